"""What a worker supplies to a run that leaves it unset (the stored config stays as it was)."""

from __future__ import annotations

from pathlib import Path

from app.core.settings import Settings
from app.worker.execution import _with_server_defaults
from synflow.config import parse_run_config


def _config(**training: object):
    return parse_run_config({"reward": {"components": [{"type": "qed"}]}, "training": training})


def test_a_run_gets_the_servers_cache_and_ray_cluster(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ray_address="head.example:6379")
    stored = _config(samplers=2, executor="ray")
    used = _with_server_defaults(stored, settings)
    assert used.environment.cache_dir == tmp_path / "cache"
    assert used.training.ray_address == "head.example:6379"
    assert stored.environment.cache_dir is None and stored.training.ray_address is None


def test_what_a_run_sets_itself_is_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ray_address="head.example:6379")
    own = parse_run_config(
        {"reward": {"components": [{"type": "qed"}]}, "environment": {"cache_dir": str(tmp_path / "mine")}}
    )
    used = _with_server_defaults(own, settings)
    assert used.environment.cache_dir == tmp_path / "mine"
    assert used.training.ray_address is None, "a local run is not sent to the cluster"
    assert (
        _with_server_defaults(_config(executor="ray"), Settings(data_dir=tmp_path)).training.ray_address
        is None
    )
