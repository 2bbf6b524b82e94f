"""No endpoint reads or writes outside the data directory: upload file names that are paths (``../``,
absolute, backslashes, URL-encoded once or twice) are refused and nothing lands outside; RunConfig
file paths (building blocks, templates, cache) must resolve, symlinks followed, inside the data
directory; export and page paths with traversal find nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.security.conftest import Seeded

BAD_NAMES = [
    "../evil.smi",
    "../../evil.smi",
    "/tmp/evil.smi",
    "..\\\\evil.smi",
    "sub/evil.smi",
    "..%2Fevil.smi",
    "%2e%2e%2fevil.smi",
    "%252e%252e%252fevil.smi",
    "..",
    "C:evil.smi",
]


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(seeded.settings, seeded.db), raise_server_exceptions=False) as test_client:
        yield test_client


def _files_outside(root: Path, data_dir: Path) -> set[Path]:
    return {p for p in root.rglob("*") if data_dir not in p.parents and p != data_dir}


@pytest.mark.parametrize("kind", ["libraries", "template-sets"])
def test_upload_names_that_are_paths_are_refused(client: TestClient, seeded: Seeded, kind: str) -> None:
    data_dir = seeded.settings.data_dir.resolve()
    before = _files_outside(data_dir.parent, data_dir)
    for i, name in enumerate(BAD_NAMES):
        answer = client.post(f"/api/v1/{kind}", data={"name": f"n{i}"}, files={"file": (name, b"CCO x\n")})
        assert answer.status_code == 422, (name, answer.status_code, answer.text)
        assert answer.json()["errors"][0]["field"] == "file", name
    assert _files_outside(data_dir.parent, data_dir) == before
    assert not list(Path("/tmp").glob("evil.smi"))
    good = client.post(
        "/api/v1/libraries", data={"name": "ok"}, files={"file": ("ok.smi", b"CCO a\nCCN b\n")}
    )
    if good.status_code != 503:  # 503: this checkout has no reactions layer to load libraries
        assert good.status_code == 201, good.text
        assert Path(good.json()["path"]).resolve().parent == seeded.settings.upload_root().resolve()


def test_run_config_paths_stay_in_the_data_dir(client: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    data_dir = seeded.settings.data_dir.resolve()
    outside = tmp_path / "outside.smi"
    outside.write_text("CCO a\n")
    link = data_dir / "libraries" / "link.smi"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    (data_dir / "libraries" / "inside.smi").write_text("CCO a\n")
    bad = [
        "/etc/passwd",
        str(outside),
        str(data_dir / ".." / "outside.smi"),
        str(data_dir / "libraries" / ".." / ".." / "outside.smi"),
        "../../../../etc/passwd",
        str(link),  # a symlink inside pointing outside
    ]
    for key in ("building_blocks", "templates", "cache_dir"):
        for path in bad:
            config = {"reward": {"components": [{"type": "qed"}]}, "environment": {key: path}}
            answer = client.post("/api/v1/runs", json=config)
            assert answer.status_code == 422, (key, path, answer.text)
            assert answer.json()["errors"][0]["field"] == f"environment.{key}", answer.text
    config = {
        "reward": {"components": [{"type": "qed"}]},
        "environment": {"building_blocks": str(data_dir / "libraries" / "inside.smi")},
    }
    assert client.post("/api/v1/runs", json=config).status_code == 201


def test_export_and_page_paths_do_not_traverse(client: TestClient, seeded: Seeded) -> None:
    for run_id in ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..%252f..%252fetc"]:
        answer = client.get(f"/api/v1/runs/{run_id}/export")
        assert answer.status_code == 404 and "root:" not in answer.text
    for name in ["..%2F..%2Fsettings.py", "%2e%2e%2fmain.py", "..", "/etc/passwd", "%2Fetc%2Fpasswd"]:
        answer = client.get(f"/pages/static/{name}")
        assert answer.status_code == 404 and "import" not in answer.text and "root:" not in answer.text
    exported = client.get(f"/api/v1/runs/{seeded.run_id}/export", params={"format": "jsonl"})
    assert exported.status_code == 200 and exported.text.count("\n") == len(seeded.molecule_ids)
