"""Pareto fronts: the algorithm against an O(n²) brute force (random points with many ties, duplicates,
two to five objectives, streamed in small chunks), then a run's front read from SQLite and PostgreSQL
(real QED / SA / similarity scores of bundled building blocks, rows with missing or NaN scores) and
``GET /runs/{id}/pareto``, and the sampling job's ``preference`` check."""

from __future__ import annotations

import functools
import gzip
import random
from collections.abc import Iterator
from importlib import resources
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import Database
from app.core.models import Molecule, Run
from app.core.settings import Settings
from app.main import create_app
from app.runs.fronts import read_front, spread
from app.runs.pareto import FrontAccumulator, FrontTooLarge, front_2d, front_nd, non_dominated
from app.runs.store import write_molecules
from synflow.callbacks import SampledMolecule
from synflow.config import RunConfig
from synflow.rewards import RewardConfig, build_reward

REWARD = {
    "components": [
        {"type": "qed"},
        {"type": "sa"},
        {"type": "similarity", "name": "sim", "references": ["Nc1ccc(S(=O)(=O)Nc2cnccn2)cc1"]},
        {"type": "substructure", "name": "amine", "required": ["[NX3;H2,H1]"], "role": "filter"},
    ]
}


def brute_force(values: np.ndarray) -> set[int]:
    """Row i is dominated when some row is ≥ on every objective and > on one: O(n²), no cleverness."""
    n = len(values)
    kept = set()
    for i in range(n):
        if not any(all(values[j] >= values[i]) and any(values[j] > values[i]) for j in range(n) if j != i):
            kept.add(i)
    return kept


def _tied(rng: np.random.Generator, n: int, k: int, levels: int) -> np.ndarray:
    """Points on a coarse grid: many ties on each objective and many exact duplicates."""
    return rng.integers(0, levels, size=(n, k)) / levels


# -- the algorithm -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("levels", [3, 7, 1000])
def test_front_equals_brute_force_on_random_points_with_ties(k: int, levels: int) -> None:
    rng = np.random.default_rng(1000 * k + levels)
    for _ in range(4):
        values = _tied(rng, 400, k, levels)
        expected = brute_force(values)
        assert set(non_dominated(values).tolist()) == expected
        assert set(front_nd(values).tolist()) == expected  # the general algorithm for every k
        if k == 2:
            assert set(front_2d(values).tolist()) == expected


def test_front_on_anticorrelated_and_degenerate_points() -> None:
    rng = np.random.default_rng(5)
    x = rng.random(300)
    line = np.stack([x, 1 - x], axis=1)  # every point non-dominated
    assert set(front_2d(line).tolist()) == set(range(300))
    simplex = rng.dirichlet(np.ones(3), 300)
    assert set(front_nd(simplex).tolist()) == brute_force(simplex) == set(range(300))
    same = np.tile([[0.5, 0.2, 0.9]], (50, 1))  # duplicates dominate nothing: all are kept
    assert sorted(non_dominated(same).tolist()) == list(range(50))
    one_better = np.vstack([same, [[0.5, 0.2, 0.91]]])  # better on one objective, equal on the rest
    assert non_dominated(one_better).tolist() == [50]
    assert non_dominated(np.empty((0, 2))).tolist() == [] and non_dominated(np.empty((0, 3))).tolist() == []
    # -0.0 and 0.0 are equal: neither dominates the other
    assert sorted(non_dominated(np.array([[0.0, 1.0], [-0.0, 1.0]])).tolist()) == [0, 1]


def test_front_2d_returns_the_front_in_descending_order_of_the_first_objective() -> None:
    values = np.array([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5], [0.5, 0.4], [0.9, 0.1], [0.3, 0.3]])
    assert front_2d(values).tolist() in ([1, 4, 2, 0], [4, 1, 2, 0])


def test_nan_and_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        non_dominated(np.array([[0.1, np.nan], [0.2, 0.3]]))
    with pytest.raises(ValueError, match=r"\(n, k\)"):
        non_dominated(np.array([0.1, 0.2]))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_a_streamed_front_equals_the_front_of_everything(k: int) -> None:
    rng = np.random.default_rng(k)
    values = np.vstack([_tied(rng, 600, k, 6), rng.random((300, k))])
    ids = rng.permutation(10_000)[: len(values)]
    expected = {int(ids[i]) for i in brute_force(values)}
    for chunk, min_prune in ((1, 1), (13, 20), (64, 16), (1000, 65_536)):
        accumulator = FrontAccumulator(k, min_prune=min_prune)
        for start in range(0, len(values), chunk):
            accumulator.add(ids[start : start + chunk], values[start : start + chunk])
        front_ids, front_values = accumulator.result()
        assert set(front_ids.tolist()) == expected
        # ordered: descending on the first objective, ties by the next ones, then by id
        keys = [(*(-front_values[i]), front_ids[i]) for i in range(len(front_ids))]
        assert keys == sorted(keys)


def test_the_work_bound_stops_a_huge_front() -> None:
    simplex = np.random.default_rng(0).dirichlet(np.ones(3), 3000)  # all 3000 mutually non-dominated
    with pytest.raises(FrontTooLarge, match="work bound"):
        front_nd(simplex, max_pairs=1_000_000)
    accumulator = FrontAccumulator(3, min_prune=100, max_pairs=1_000_000)
    with pytest.raises(FrontTooLarge):  # the bound spans every prune of a stream
        for start in range(0, 3000, 100):
            accumulator.add(np.arange(start, start + 100), simplex[start : start + 100])
        accumulator.result()
    assert len(front_nd(simplex, max_pairs=10**9)) == 3000


def test_spread_keeps_both_ends_and_at_most_limit() -> None:
    assert spread(5, 10).tolist() == [0, 1, 2, 3, 4]
    for count, limit in ((11, 10), (1000, 7), (3, 1), (100, 2)):
        positions = spread(count, limit).tolist()
        assert len(positions) == limit and len(set(positions)) == limit
        assert positions[0] == 0 and (limit == 1 or positions[-1] == count - 1)


# -- a run's front in the database (SQLite and PostgreSQL) ----------------------------------------


def _blocks(n: int) -> list[str]:
    path = resources.files("reactions.data").joinpath("default_building_blocks.smi.gz")
    with path.open("rb") as raw, gzip.open(raw, "rt") as handle:
        return [line.split()[0] for line, _ in zip(handle, range(n), strict=False)]


def _run(db: Database, config: dict[str, Any], **fields: Any) -> str:
    with db.session() as session:
        run = Run(config=config, total_steps=10, **fields)
        session.add(run)
        session.flush()
        return run.id


def _real_run(db: Database, n: int = 300) -> str:
    """A run scored by its real reward (QED, SA, similarity, an amine filter) on bundled building
    blocks, plus rows a reward plugin failed on: a score missing, NaN (stored as null)."""
    config = RunConfig.model_validate({"reward": REWARD}).model_dump(mode="json")
    run_id = _run(db, config, status="succeeded")
    smiles = _blocks(n)
    with build_reward(RewardConfig.model_validate(REWARD)) as reward:
        batch = reward.score(smiles)
    records = [
        SampledMolecule(s.canonical_smiles or s.smiles, s.reward, i // 50, s.scores, {"steps": []})
        for i, s in enumerate(batch)
    ]
    records += [
        SampledMolecule("CCCCCCCCCCO", 0.0, 7, {"qed": 0.99, "sim": 0.99, "amine": 1.0}),  # no sa
        SampledMolecule("CCCCCCCCCCN", 0.0, 7, {"qed": float("nan"), "sa": 0.99, "sim": 0.9, "amine": 1.0}),
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)
    return run_id


def _tied_run(db: Database, n: int = 400) -> str:
    """Random scores on a coarse grid under a trade-off (qed + sa + x ≤ 1, so many molecules share each
    front point: ties and duplicates) and a few rows missing a score."""
    rng = random.Random(3)
    components = [{"type": "qed"}, {"type": "sa"}, {"type": "python", "name": "x", "target": "m:f"}]
    run_id = _run(db, {"reward": {"components": components}})
    records = []
    for i in range(n):
        qed = rng.randrange(6)
        sa = rng.randrange(6 - qed)
        x = max(0, 5 - qed - sa - rng.choice((0, 0, 1, 2)))
        scores = {"qed": qed / 5, "sa": sa / 5, "x": x / 5}
        if i % 37 == 0:
            del scores["sa"]
        records.append(
            SampledMolecule("C" * (i % 40 + 1) + "O" * (i // 40 + 1), rng.random(), i // 10, scores)
        )
    with db.session() as session:
        write_molecules(session, run_id, records)
    return run_id


def _stored(db: Database, run_id: str, names: list[str]) -> tuple[list[int], np.ndarray, int]:
    """Every row through the ORM: (ids, values) of the comparable ones, and how many were not."""
    with db.session() as session:
        rows = session.execute(select(Molecule.id, Molecule.scores).where(Molecule.run_id == run_id)).all()
    ids, values, missing = [], [], 0
    for mol_id, scores in rows:
        row = [scores.get(name) for name in names]
        if any(v is None or not np.isfinite(v) for v in row):
            missing += 1
            continue
        ids.append(mol_id)
        values.append(row)
    return ids, np.array(values, dtype=float), missing


@pytest.mark.parametrize(
    "names", [["qed", "sa"], ["sa", "sim"], ["qed", "sa", "sim"], ["qed", "sim", "amine"]]
)
def test_a_real_runs_front_equals_brute_force(db: Database, names: list[str]) -> None:
    run_id = _real_run(db)
    ids, values, missing = _stored(db, run_id, names)
    expected = {ids[i] for i in brute_force(values)}
    for chunk_rows in (16, 50_000):
        with db.session() as session:
            front = read_front(session, run_id, names, sample=40, chunk_rows=chunk_rows)
        assert set(front.ids.tolist()) == expected
        assert front.considered == len(ids) and front.excluded == missing >= 1
        assert front.values.shape == (len(expected), len(names))
        assert len(front.sample_ids) == 40 and set(front.sample_ids.tolist()) <= set(ids)
        if chunk_rows == 16:
            first_sample = front.sample_ids.tolist()
        else:  # the sample does not depend on how rows were streamed
            assert front.sample_ids.tolist() == first_sample


@pytest.mark.parametrize("names", [["qed", "sa"], ["qed", "sa", "x"]])
def test_a_tied_runs_front_equals_brute_force(db: Database, names: list[str]) -> None:
    run_id = _tied_run(db)
    ids, values, missing = _stored(db, run_id, names)
    expected = {ids[i] for i in brute_force(values)}
    with db.session() as session:
        front = read_front(session, run_id, names, chunk_rows=7)
    assert set(front.ids.tolist()) == expected and front.excluded == missing == 11
    assert len(expected) > len({tuple(v) for v in values[list(brute_force(values))]})  # duplicates kept


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


def test_the_api_returns_the_front_with_molecule_items(client: TestClient, db: Database) -> None:
    run_id = _real_run(db)
    ids, values, missing = _stored(db, run_id, ["qed", "sa", "sim"])
    expected = {ids[i] for i in brute_force(values)}
    answer = client.get(f"/api/v1/runs/{run_id}/pareto", params={"sample": 25})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scores"] == ["qed", "sa", "sim"]  # the default: every score component, no filter
    assert body["available"] == ["qed", "sa", "sim", "amine"]
    assert {m["id"] for m in body["items"]} == expected and body["front_size"] == len(expected)
    assert body["considered"] == len(ids) and body["excluded"] == missing
    first = body["items"][0]
    assert {"smiles", "reward", "scores", "route", "step"} <= set(first) and first["run_id"] == run_id
    qeds = [m["scores"]["qed"] for m in body["items"]]
    assert qeds == sorted(qeds, reverse=True)
    assert len(body["sample"]) == 25 and all(len(p["values"]) == 3 for p in body["sample"])
    by_id = {i: v for i, v in zip(ids, values.tolist(), strict=True)}
    assert all(p["values"] == by_id[p["id"]] for p in body["sample"])

    two = client.get(f"/api/v1/runs/{run_id}/pareto", params={"scores": "sa,qed", "limit": 3}).json()
    two_ids, two_values, _ = _stored(db, run_id, ["sa", "qed"])
    two_expected = {two_ids[i] for i in brute_force(two_values)}
    assert two["scores"] == ["sa", "qed"] and two["front_size"] == len(two_expected) > 3
    assert len(two["items"]) == 3 and {m["id"] for m in two["items"]} <= two_expected
    sa = [m["scores"]["sa"] for m in two["items"]]
    assert sa[0] == max(two_values[:, 0]) and sa == sorted(sa, reverse=True)  # both ends of the front
    assert two["sample"] == []


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ("qed,logp", "'logp' is not a score component of this run; components: qed, sa, sim, amine"),
        ("qed", "at least two scores (got qed)"),
        ("qed,qed", "each score may be named once"),
        ("qed,", "an empty name is not a score component"),
        ("qed,sa_raw", "'sa_raw' is not a score component"),
    ],
)
def test_bad_scores_are_refused_naming_the_field(
    client: TestClient, db: Database, scores: str, message: str
) -> None:
    run_id = _run(db, RunConfig.model_validate({"reward": REWARD}).model_dump(mode="json"))
    answer = client.get(f"/api/v1/runs/{run_id}/pareto", params={"scores": scores})
    assert answer.status_code == 422
    body = answer.json()
    assert body["errors"][0]["field"] == "scores" and message in body["message"]


def test_other_refusals(client: TestClient, db: Database) -> None:
    single = _run(
        db, RunConfig.model_validate({"reward": {"components": [{"type": "qed"}]}}).model_dump(mode="json")
    )
    answer = client.get(f"/api/v1/runs/{single}/pareto")
    assert answer.status_code == 422 and "this run's reward has qed" in answer.json()["message"]
    assert client.get("/api/v1/runs/nope/pareto").status_code == 404
    run_id = _tied_run(db)
    for params in ({"limit": 0}, {"limit": 5001}, {"sample": -1}, {"sample": 5001}):
        bad = client.get(f"/api/v1/runs/{run_id}/pareto", params=params)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == next(iter(params))


def test_a_sampling_jobs_front_uses_its_parents_reward(client: TestClient, db: Database) -> None:
    parent = _real_run(db, n=40)
    with db.session() as session:
        job = Run(config={"count": 10}, kind="sample", parent_id=parent, total_steps=1)
        session.add(job)
        session.flush()
        job_id = job.id
        rows = session.scalars(select(Molecule).where(Molecule.run_id == parent)).all()
        records = [SampledMolecule(m.smiles, m.reward, 1, m.scores) for m in rows]
        write_molecules(session, job_id, records)
    answer = client.get(f"/api/v1/runs/{job_id}/pareto", params={"scores": "sim,amine"})
    assert answer.status_code == 200 and answer.json()["scores"] == ["sim", "amine"]
    mine = client.get(f"/api/v1/runs/{parent}/pareto", params={"scores": "sim,amine"}).json()
    assert {m["smiles"] for m in answer.json()["items"]} == {m["smiles"] for m in mine["items"]}


def test_a_run_without_a_readable_reward_offers_its_stored_scores(client: TestClient, db: Database) -> None:
    run_id = _run(db, {})
    with db.session() as session:
        write_molecules(
            session,
            run_id,
            [
                SampledMolecule("CCO", 0.5, 1, {"dock": 0.2, "dock_raw": -7.0, "qed": 0.4}),
                SampledMolecule("CCN", 0.5, 1, {"dock": 0.3, "dock_raw": -8.0, "qed": 0.3}),
            ],
        )
    body = client.get(f"/api/v1/runs/{run_id}/pareto").json()
    assert body["scores"] == ["dock", "qed"] and body["front_size"] == 2
    bad = client.get(f"/api/v1/runs/{run_id}/pareto", params={"scores": "dock_raw,qed"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "scores"


def test_openapi_documents_the_pareto_endpoint(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/runs/{run_id}/pareto"]["get"]
    assert operation["summary"] and "non-dominated" in operation["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ParetoOut"
    )
    assert {"404", "422"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} >= {"scores", "limit", "sample"}


# -- sampling at chosen weights ---------------------------------------------------------------------

PREFERENCE_RUN = {
    "reward": {"components": [{"type": "qed"}, {"type": "sa"}]},
    "conditioning": {"preferences": {"components": ["qed", "sa"]}},
}


def _finished(db: Database, config: dict[str, Any]) -> str:
    """A run as the worker leaves a finished one (the job is only queued here, never run)."""
    stored = RunConfig.model_validate(config).model_dump(mode="json")
    return _run(db, stored, status="succeeded", checkpoint_path="last.pt", kind="train")


def test_a_sampling_job_at_chosen_weights(client: TestClient, db: Database) -> None:
    conditioned = _finished(db, PREFERENCE_RUN)
    plain = _finished(db, {"reward": PREFERENCE_RUN["reward"]})
    created = client.post(
        f"/api/v1/runs/{conditioned}/sample", json={"count": 5, "preference": {"qed": 3, "sa": 1}}
    )
    assert created.status_code == 201, created.text
    job = client.get(f"/api/v1/runs/{created.json()['id']}").json()
    assert job["kind"] == "sample" and job["parent_id"] == conditioned
    assert job["config"]["preference"] == {"qed": 3.0, "sa": 1.0}

    refused = client.post(f"/api/v1/runs/{plain}/sample", json={"preference": {"qed": 1, "sa": 1}})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "preference"
    assert "not trained preference-conditioned" in refused.json()["message"]
    unknown = client.post(f"/api/v1/runs/{conditioned}/sample", json={"preference": {"qed": 1, "logp": 1}})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "preference.logp"
    zero = client.post(f"/api/v1/runs/{conditioned}/sample", json={"preference": {"qed": 0, "sa": 0}})
    assert zero.status_code == 422 and zero.json()["errors"][0]["field"].startswith("preference")
    with db.session() as session:  # nothing refused was queued
        assert session.scalar(select(Run.id).where(Run.parent_id == plain)) is None


def test_the_work_bound_answers_422_naming_scores(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three scores on which every molecule trades off against every other: past the bound the stream
    stops (its cursor closed: the session goes on working) and the API names `scores`."""
    run_id = _run(
        db,
        {
            "reward": {
                "components": [
                    {"type": "qed"},
                    {"type": "sa"},
                    {"type": "python", "name": "x", "target": "m:f"},
                ]
            }
        },
    )
    weights = np.random.default_rng(1).dirichlet(np.ones(3), 600)
    records = [
        SampledMolecule(
            "C" * (i % 30 + 1) + "N" * (i // 30 + 1),
            0.5,
            1,
            dict(zip(("qed", "sa", "x"), map(float, w), strict=True)),
        )
        for i, w in enumerate(weights)
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)
        with pytest.raises(FrontTooLarge):
            read_front(session, run_id, ["qed", "sa", "x"], chunk_rows=50, max_pairs=20_000)
        assert session.scalar(select(Molecule.id).where(Molecule.run_id == run_id).limit(1)) is not None
        assert len(read_front(session, run_id, ["qed", "sa", "x"], chunk_rows=50).ids) == 600
    import app.api.molecules as molecules_api

    bounded = functools.partial(read_front, max_pairs=20_000)
    monkeypatch.setattr(molecules_api, "read_front", bounded)
    answer = client.get(f"/api/v1/runs/{run_id}/pareto")
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "scores"
    assert "work bound" in answer.json()["message"] and "choose fewer scores" in answer.json()["message"]
    # two scores take the sweep, which needs no bound
    two = client.get(f"/api/v1/runs/{run_id}/pareto", params={"scores": "qed,sa"}).json()
    assert two["front_size"] == len(brute_force(weights[:, :2]))
