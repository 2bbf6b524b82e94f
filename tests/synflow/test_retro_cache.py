"""The lazy reachability proofs, the screened retro-analysis and the persistent retro store give
exactly the answers of the plain recursion over plain retro-analyses (``fast=False``), and the store
survives other processes, reruns and damage.

Molecules come from forward random walks over the bundled default library and templates, so these
tests need nothing outside the repository.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rdkit import Chem

from reactions.index import CompatibilityIndex, build_compatibility_index
from reactions.library import BuildingBlockLibrary, default_library
from reactions.templates import TemplateSet, default_template_set
from synflow.chemistry import RetroParent, SynthesisChemistry, _block_atom_bounds, _template_growth
from synflow.retro_store import RetroStore, decode_parents, encode_parents
from tests.synflow.tiny_setting import tiny_chemistry

State = tuple[str, int]  # (molecule, depth)
Setting = tuple[BuildingBlockLibrary, TemplateSet, CompatibilityIndex]


@pytest.fixture(scope="module")
def default_setting() -> Setting:
    library, templates = default_library(), default_template_set()
    return library, templates, build_compatibility_index(library, templates, workers=1)


def chemistry(setting: Setting, max_reactions: int, **options: Any) -> SynthesisChemistry:
    return SynthesisChemistry(*setting, max_reactions=max_reactions, min_reactions=1, **options)


def forward_walks(chem: SynthesisChemistry, n: int, seed: int) -> dict[State, RetroParent]:
    """``n`` distinct states reached by random forward walks (a start block, then random applicable
    reactions with random partners), each with the step that made it. Only forward chemistry is
    run, so neither the reference nor the lazy path has seen anything when the comparison starts."""
    rng = np.random.default_rng(seed)
    states: dict[State, RetroParent] = {}
    while len(states) < n:
        block = int(rng.choice(chem.start_blocks))
        smiles, depth = chem.block_smiles(block), 0
        while depth < chem.max_reactions:
            slots = chem.template_slots(smiles, block if depth == 0 else None)
            if not slots:
                break
            t, s = slots[int(rng.integers(len(slots)))]
            partner = -1
            reactants: tuple[str, ...] = (smiles,)
            if chem.templates[t].arity == 2:
                partners = chem.partners(t, s)
                partner = int(partners[rng.integers(len(partners))])
                reactants = chem.ordered(s, smiles, chem.block_smiles(partner))
            product = chem.product(t, reactants)
            if product is None:
                break
            depth += 1
            states.setdefault((product, depth), RetroParent(t, s, smiles, partner))
            smiles = product
    return states


def answers(chem: SynthesisChemistry, states: dict[State, RetroParent]) -> list[tuple[object, ...]]:
    """Everything the uniform backward policy reads, per state; the full retro-analysis last, so the
    lazy path answers the others before it has it (as the sampler does)."""
    out: list[tuple[object, ...]] = []
    for (smiles, depth), step in states.items():
        made = chem.gives_back(smiles, step, depth)
        out.append((made, tuple(chem.parents(smiles, depth)), tuple(chem.stop_depths(smiles))))
    return [(*row, chem.retro(smiles)) for row, (smiles, _) in zip(out, states, strict=True)]


def reference_answers(chem: SynthesisChemistry, states: dict[State, RetroParent]) -> list[tuple[object, ...]]:
    assert not chem.fast
    return [
        (
            step in chem.retro(smiles),
            tuple(chem.parents(smiles, depth)),
            tuple(chem.stop_depths(smiles)),
            chem.retro(smiles),
        )
        for (smiles, depth), step in states.items()
    ]


# -- (a) exactness against the plain recursion ---------------------------------------------------
def test_depth_one_parents_equal_the_plain_retro_analysis_on_500_molecules(default_setting: Setting) -> None:
    """500 one-reaction products: the start-block-only retro-analysis gives the parents and the step
    check, the screened, name-sharing one the full retro-analysis, all equal to the plain ones."""
    reference = chemistry(default_setting, 1, fast=False)
    states = forward_walks(reference, 500, seed=0)
    lazy = chemistry(default_setting, 1)
    expected = reference_answers(reference, states)
    assert answers(lazy, states) == expected
    assert lazy.stats["retro_start"] > 0  # the parents really came from the start-block-only path
    assert sum(1 for row in expected if row[1]) > 400  # most have parents: a comparison of substance


@pytest.mark.parametrize(("max_reactions", "n", "seed"), [(2, 100, 1), (3, 20, 2)])
def test_deeper_parents_and_stop_depths_equal_the_plain_recursion(
    default_setting: Setting, max_reactions: int, n: int, seed: int
) -> None:
    """Products of up to 3 reactions: the atom-count bound, the template-by-template proofs, the
    parents-first order and the start-block-only scans answer exactly as the plain recursion."""
    reference = chemistry(default_setting, max_reactions, fast=False)
    states = forward_walks(reference, n, seed=seed)
    lazy = chemistry(default_setting, max_reactions)
    assert answers(lazy, states) == reference_answers(reference, states)
    assert lazy.stats["bound_pruned"] > 0 and lazy.stats["retro_full"] < reference.stats["retro_full"]
    assert any(depth == max_reactions for _, depth in states)


def test_every_stop_depth_and_parent_set_of_the_tiny_setting_equals_the_plain_recursion() -> None:
    reference, lazy = tiny_chemistry(max_reactions=3), tiny_chemistry(max_reactions=3)
    reference.fast = False
    states = forward_walks(reference, 40, seed=3)
    assert answers(lazy, states) == reference_answers(reference, states)


def test_the_atom_bound_holds_for_every_forward_product(default_setting: Setting) -> None:
    """The bound the pruning rests on: a product has at most its reactants' atoms plus its
    template's growth (product template atoms less reactant template atoms)."""
    chem = chemistry(default_setting, 3)
    bounds = _block_atom_bounds(chem.library)
    growth = [_template_growth(t) for t in chem.templates]
    for (product, _), step in forward_walks(chem, 600, seed=4).items():
        atoms = chem.mol(product).GetNumAtoms()
        partner = 0 if step.block < 0 else int(bounds[step.block])
        assert atoms <= chem.mol(step.parent).GetNumAtoms() + partner + growth[step.template], product
    parsed = [Chem.MolFromSmiles(s).GetNumAtoms() for s in chem.library.smiles[:2000]]
    assert np.all(np.asarray(parsed) <= bounds[:2000])  # the blocks' own bound, without parsing them


# -- (b) a second chemistry reads what the first computed -----------------------------------------
def test_a_second_chemistry_over_the_same_store_reads_instead_of_computing(
    default_setting: Setting, tmp_path: Path
) -> None:
    first = chemistry(default_setting, 2, store_dir=tmp_path)
    states = forward_walks(first, 60, seed=5)
    expected = answers(first, states)
    first.flush_store()
    assert first.stats["retro_full"] > 0 and first.stats["retro_start"] > 0
    second = chemistry(default_setting, 2, store_dir=tmp_path)
    assert answers(second, states) == expected
    assert second.stats["retro"] == 0  # nothing at all was retro-analysed again
    assert second.stats["stored_retro"] + second.stats["stored_reachable"] > 0
    assert len(list(tmp_path.glob("retro-*.sqlite"))) == 1


def test_another_start_block_set_does_not_read_the_other_ones_reachability(tmp_path: Path) -> None:
    """min_reactions = 0 makes every block a start: the retro-analyses are shared, the
    reachability facts are not (they are keyed by the start-block set too)."""
    one = tiny_chemistry(max_reactions=2, min_reactions=1)
    one.store_dir = tmp_path
    states = forward_walks(one, 20, seed=6)
    answers(one, states)
    one.flush_store()
    zero = tiny_chemistry(max_reactions=2, min_reactions=0)
    zero.store_dir = tmp_path
    reference = tiny_chemistry(max_reactions=2, min_reactions=0)
    reference.fast = False
    assert answers(zero, states) == reference_answers(reference, states)


# -- (c) concurrent processes ---------------------------------------------------------------------
def _write_rows(path: str, worker: int, n: int) -> None:
    store = RetroStore(path, "key", flush_rows=5, flush_seconds=60.0)
    for i in range(n):
        j = i % 50  # both workers write these 50 rows: INSERT OR IGNORE of equal values
        shared = f"C{'C' * j}O"
        store.add_parents(shared, [(j % 7, 0, j, "CCO")])
        store.add_parents(f"[{worker}]{i}", [(worker, 1, i, f"N{i}")])
        store.add_reachable(7, f"[{worker}]{i}", 2, i % 2 == 0)
        if i % 100 == 0:
            assert store.parents(shared) in (None, [(j % 7, 0, j, "CCO")])
    store.close()


def _sample_tiny(store_dir: str, seed: int, queue: Any) -> None:
    chem = tiny_chemistry(max_reactions=3)
    chem.store_dir = Path(store_dir)
    states = forward_walks(chem, 30, seed=seed)
    queue.put((states, answers(chem, states)))
    chem.flush_store()


def test_two_processes_writing_the_store_at_once_leave_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "retro-test.sqlite"
    context = mp.get_context("spawn")
    workers = [context.Process(target=_write_rows, args=(str(path), w, 600)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM reach").fetchone()[0] == 1200
    store = RetroStore(path, "key")
    assert store.parents("[1]599") == [(1, 1, 599, "N599")]
    assert store.reachable(7, "[0]598", 2) is True and store.reachable(7, "[0]599", 2) is False
    store.close()


def test_two_sampling_processes_share_one_store_and_agree_with_the_reference(tmp_path: Path) -> None:
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_sample_tiny, args=(str(tmp_path), seed, queue)) for seed in (7, 8)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    reference = tiny_chemistry(max_reactions=3)
    reference.fast = False
    reader = tiny_chemistry(max_reactions=3)
    reader.store_dir = tmp_path
    for states, found in results:
        assert found == reference_answers(reference, states)
        assert answers(reader, states) == found
    assert reader.stats["retro"] == 0


# -- (d) damage ------------------------------------------------------------------------------------
def _store_file(directory: Path) -> Path:
    (path,) = directory.glob("retro-*.sqlite")
    return path


@pytest.mark.parametrize("damage", ["header", "middle", "foreign"])
def test_a_damaged_store_is_set_aside_and_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = tiny_chemistry(max_reactions=3)
    first.store_dir = tmp_path
    states = forward_walks(first, 30, seed=9)
    expected = answers(first, states)
    first._store.close()  # type: ignore[union-attr]
    path = _store_file(tmp_path)
    if damage == "foreign":  # a valid SQLite file of something else under the store's name
        path.unlink()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("INSERT INTO meta VALUES ('format', '999')")
    else:
        data = bytearray(path.read_bytes())
        start = 0 if damage == "header" else len(data) // 2
        data[start : start + 4096] = b"\xde\xad\xbe\xef" * 1024
        path.write_bytes(bytes(data))
    second = tiny_chemistry(max_reactions=3)
    second.store_dir = tmp_path
    with caplog.at_level(logging.WARNING, logger="synflow.retro_store"):
        assert answers(second, states) == expected
    assert "rebuilding" in caplog.text
    second.flush_store()
    assert second._store is not None and second._store.stats["rebuilt"] == 1
    assert list(tmp_path.glob("retro-*.sqlite.corrupt-*"))  # kept aside for inspection
    third = tiny_chemistry(max_reactions=3)
    third.store_dir = tmp_path
    assert answers(third, states) == expected and third.stats["retro"] == 0


def test_a_store_that_cannot_be_opened_only_switches_itself_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory should be")
    chem = tiny_chemistry(max_reactions=2)
    chem.store_dir = blocker
    reference = tiny_chemistry(max_reactions=2)
    reference.fast = False
    states = forward_walks(reference, 15, seed=10)
    with caplog.at_level(logging.WARNING, logger="synflow.retro_store"):
        assert answers(chem, states) == reference_answers(reference, states)
    assert "switched off" in caplog.text


def test_a_full_store_is_still_read_but_no_longer_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RetroStore(tmp_path / "retro-full.sqlite", "key", flush_rows=1, max_bytes=1)
    store.add_parents("CCO", [(0, 0, -1, "CC=O")])  # the empty file is already past one byte
    with caplog.at_level(logging.WARNING, logger="synflow.retro_store"):
        store.add_parents("CCN", [(0, 0, -1, "CC=N")])
    assert store.parents("CCN") is None and store.stats["dropped"] == 2
    assert "no longer written" in caplog.text
    store.close()


def test_parents_round_trip_through_the_store_encoding() -> None:
    parents = [(3, 1, 17, "CC(=O)N[C@@H](C)c1ccccc1"), (0, 0, -1, "[NH3+]CC(=O)[O-]")]
    assert decode_parents(encode_parents(parents)) == parents
    assert decode_parents(encode_parents([])) == []
