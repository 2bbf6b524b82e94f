"""Pathological SMILES and SMARTS sent to a real ``synflow serve`` at every endpoint that parses
chemistry: each is refused with a 4xx whose message names the field, while a thread polls
``/healthz`` the whole time and every poll must answer (a stalled server would time out). Unguarded,
the 10^4-atom ring alone holds RDKit (and the GIL) for about 17 s."""

from __future__ import annotations

import threading
import time

import httpx

from tests.app.security.conftest import Server

HUGE_RING = "C1" + "C" * 10_000 + "C1"
MEDIUM_RING = "C1" + "C" * 1_500 + "C1"  # short enough for the depiction's 2,000 characters
CHAIN_1E5 = "C" * 100_000
DEEP_BRANCHES = "C(" * 3_000 + "C" + ")" * 3_000
LONG_STRING = "c1ccccc1" * 20_000
DEEP_RECURSIVE_SMARTS = "[$(" * 60 + "C" + ")]" * 60
HUGE_SMARTS = "[#6]~" * 5_000 + "[#6]"
URL_MAX = 60_000
BAD_SMILES = [HUGE_RING, CHAIN_1E5, DEEP_BRANCHES, LONG_STRING]
BAD_SMARTS = [DEEP_RECURSIVE_SMARTS, HUGE_SMARTS, HUGE_RING, LONG_STRING]


class HealthProbe(threading.Thread):
    """Polls /healthz every 50 ms; records each latency and any failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.latencies, self.failures = url, [], []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get("/healthz").status_code == 200
                except httpx.HTTPError as error:
                    ok = False
                    self.failures.append(repr(error))
                self.latencies.append(time.perf_counter() - start)
                if not ok and not self.failures:
                    self.failures.append("not 200")
                time.sleep(0.05)


def _refused(response: httpx.Response, field: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code == 422:
        assert field in response.text, response.text[:300]


def test_pathological_chemistry_is_refused_without_stalling(server: Server) -> None:
    client = httpx.Client(base_url=server.url, timeout=30)
    probe = HealthProbe(server.url)
    probe.start()
    molecules = f"/api/v1/runs/{server.run_id}/molecules"
    try:
        # A URL carries at most 64 KiB (httpx's limit), so the 10^5-character ones go in bodies below.
        for smarts in [s for s in BAD_SMARTS if len(s) < URL_MAX]:
            _refused(client.get(molecules, params={"smarts": smarts}), "smarts")
        for smiles in [s for s in BAD_SMILES if len(s) < URL_MAX]:
            _refused(client.get(molecules, params={"similar_to": smiles}), "similar_to")
        _refused(client.get("/pages/depict.svg", params={"smiles": MEDIUM_RING}), "SMILES")
        for i, smiles in enumerate(BAD_SMILES[:3]):  # LONG_STRING would pass the 256 KiB body limit
            reward = {"components": [{"type": "similarity", "references": ["CCO", smiles]}]}
            _refused(client.post("/api/v1/runs", json={"reward": reward}), "reward.components.0.references.1")
            forbidden = {"type": "substructure", "forbidden": [BAD_SMARTS[i % 2]]}
            body = {"reward": {"components": [{"type": "qed"}, forbidden]}}
            _refused(client.post("/api/v1/runs", json=body), "reward.components.1.forbidden.0")
        for i, smiles in enumerate([HUGE_RING, CHAIN_1E5, MEDIUM_RING]):
            upload = {"file": (f"bad{i}.smi", f"CCO a\nc1ccccc1 b\n{smiles} c\n".encode())}
            _refused(client.post("/api/v1/libraries", data={"name": f"bad{i}"}, files=upload), "file")
        for i, smarts in enumerate([DEEP_RECURSIVE_SMARTS, "[C:1]>>" + "[C]" * 3000]):
            upload = {"file": (f"bad{i}.txt", f"{smarts} bad\n".encode())}
            _refused(client.post("/api/v1/template-sets", data={"name": f"bad{i}"}, files=upload), "file")
        # Ordinary chemistry still works.
        assert client.get(molecules, params={"smarts": "c1ccccc1", "similar_to": "CCO"}).status_code == 200
    finally:
        probe.stop.set()
        probe.join(timeout=10)
        client.close()
    assert probe.latencies and not probe.failures, probe.failures[:5]
    print(f"/healthz polls {len(probe.latencies)}, slowest {max(probe.latencies) * 1000:.0f} ms")
