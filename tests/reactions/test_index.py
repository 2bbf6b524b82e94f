"""The compatibility index: equal to brute-force RDKit matching, cached, memory-mapped, invalidated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from reactions.index import build_compatibility_index, compute_compatibility_index
from reactions.library import BuildingBlockLibrary, library_from_smiles
from reactions.screen import FeatureScreen, pattern_screen
from reactions.templates import TemplateSet, load_template_set, parse_template_lines

SHARED_SETS = ["synflownet_hb.txt", "rxnflow_hb_edited.txt", "rxnflow_real.txt"]
TOY_TEMPLATES = [
    "[C:1](=[O:2])[OH].[N;H2,H1;!$(NC=O):3]>>[C:1](=[O:2])[N:3]\tamide",
    "[c:1][Br,I].[c:2][B](O)O>>[c:1][c:2]\tsuzuki",
    "[N:1]C(=O)OC(C)(C)C>>[N:1]\tboc removal",
    "[c:1][Br,I].[N;H2,H1;!$(NC=O):2]>>[c:1][N:2]\tbuchwald",
]
TOY_BLOCKS = ["OC(=O)c1ccccc1", "NCc1ccccc1", "Brc1ccccc1", "OB(O)c1ccccc1", "CC(C)(C)OC(=O)N1CCNCC1", "CCO"]


def brute_force(library: BuildingBlockLibrary, templates: TemplateSet) -> list[list[np.ndarray]]:
    mols = [Chem.MolFromSmiles(s) for s in library.smiles]
    return [[np.array([i for i, m in enumerate(mols) if t.matches(m, s)], dtype=np.int32)
             for s in range(t.arity)] for t in templates]


@pytest.fixture(scope="module")
def zinc_sample(zinc_library: BuildingBlockLibrary) -> BuildingBlockLibrary:
    """Every 20th ZINC fragment: 500 diverse blocks, small enough to check against brute force."""
    return library_from_smiles(zinc_library.smiles[::20], zinc_library.ids[::20])


@pytest.mark.parametrize("name", SHARED_SETS)
def test_index_equals_brute_force_rdkit(
    shared_data: Path, zinc_sample: BuildingBlockLibrary, name: str,
) -> None:
    templates = load_template_set(shared_data / "templates" / name)
    index = compute_compatibility_index(zinc_sample, templates, workers=1)
    expected = brute_force(zinc_sample, templates)
    for template in templates:
        for slot in range(template.arity):
            got = index.blocks_for(template.index, slot)
            assert got.dtype == np.int32
            assert np.array_equal(got, expected[template.index][slot]), (name, template.index, slot)
    assert index.n_compatible_pairs == sum(len(a) for rows in expected for a in rows)
    assert index.meta["distinct_patterns"] < templates.n_slots  # shared patterns matched once


def test_parallel_build_equals_serial(shared_data: Path, zinc_library: BuildingBlockLibrary) -> None:
    templates = load_template_set(shared_data / "templates" / "rxnflow_real.txt")
    part = library_from_smiles(zinc_library.smiles[:1500], zinc_library.ids[:1500])
    serial = compute_compatibility_index(part, templates, workers=1)
    parallel = compute_compatibility_index(part, templates, workers=2)
    assert np.array_equal(serial.offsets, parallel.offsets)
    assert np.array_equal(serial.blocks, parallel.blocks)


def test_toy_index_queries() -> None:
    templates = parse_template_lines(TOY_TEMPLATES)
    library = library_from_smiles(TOY_BLOCKS)
    index = compute_compatibility_index(library, templates)
    assert index.blocks_for(0, 0).tolist() == [0]  # benzoic acid
    assert index.blocks_for(0, 1).tolist() == [1, 4]  # benzylamine, Boc-piperazine's NH
    assert index.blocks_for(1, 1).tolist() == [3]
    assert index.blocks_for(2, 0).tolist() == [4]
    assert index.unmatched_blocks().tolist() == [5]  # ethanol fits nothing
    assert index.slot_counts() == [[1, 2], [1, 1], [1], [1, 2]]
    assert index.usable_templates() == [0, 1, 2, 3]
    assert index.slots_of_block(1) == [(0, 1), (3, 1)]
    assert index.slots_of_block(5) == []
    assert index.n_compatible_pairs == 9
    with pytest.raises(IndexError, match="has 1 slot"):
        index.blocks_for(2, 1)
    with pytest.raises(IndexError, match="out of range"):
        index.blocks_for(4, 0)


def test_cache_reloads_memory_mapped_and_invalidates(tmp_path: Path) -> None:
    templates = parse_template_lines(TOY_TEMPLATES)
    library = library_from_smiles(TOY_BLOCKS)
    first = build_compatibility_index(library, templates, cache_dir=tmp_path)
    assert not first.from_cache and first.path is not None and first.path.parent == tmp_path
    again = build_compatibility_index(library, templates, cache_dir=tmp_path)
    assert again.from_cache and again.path == first.path
    assert isinstance(again.blocks, np.memmap)
    assert np.array_equal(again.blocks, first.blocks) and np.array_equal(again.offsets, first.offsets)

    # A changed library (one more block) gets its own index; the old one stays valid.
    grown = library_from_smiles([*TOY_BLOCKS, "Ic1ccc(N)cc1"])
    rebuilt = build_compatibility_index(grown, templates, cache_dir=tmp_path)
    assert not rebuilt.from_cache and rebuilt.path != first.path
    assert rebuilt.blocks_for(1, 0).tolist() == [2, 6]
    # Changed templates too.
    fewer = parse_template_lines(TOY_TEMPLATES[:2])
    assert not build_compatibility_index(library, fewer, cache_dir=tmp_path).from_cache

    # A damaged cache entry is rebuilt, not trusted.
    (first.path / "blocks.npy").unlink()
    repaired = build_compatibility_index(library, templates, cache_dir=tmp_path)
    assert not repaired.from_cache and np.array_equal(repaired.blocks, first.blocks)
    assert build_compatibility_index(library, templates, cache_dir=tmp_path).from_cache


def test_screen_is_exact_for_one_bond_patterns_and_sound_for_recursive_ones() -> None:
    smiles = ["Brc1ccccc1", "BrCC", "c1ccccc1", "CC(=O)Nc1ccccc1", "NCc1ccccc1"]
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    screen = FeatureScreen(mols)
    aryl_bromide = Chem.MolFromSmarts("[c][Br]")
    candidates, exact = screen.candidates(pattern_screen(aryl_bromide))
    assert exact and candidates.tolist() == [True, False, False, False, False]
    amine = Chem.MolFromSmarts("[N;H2,H1;!$(NC=O)]")
    candidates, exact = screen.candidates(pattern_screen(amine))
    assert not exact  # the recursive part is not understood by the screen...
    assert candidates[4] and not candidates[0]  # ...but the element and H count still screen
    assert all(candidates[i] for i, m in enumerate(mols) if m.HasSubstructMatch(amine))


def test_screen_never_rejects_a_match_on_charged_and_isotopic_atoms() -> None:
    smiles = ["C[N+](C)(C)C", "[2H]C([2H])([2H])N", "O=[N+]([O-])c1ccccc1", "C1CC1N", "c1ccc2[nH]ccc2c1"]
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    screen = FeatureScreen(mols)
    queries = ["[N+]", "[NX4+]", "[#7;+1]", "[NH2]", "[CH0;R]", "[c;r5]", "[nH1]", "[N;!R]",
               "[$(N(=O)=O),$([N+](=O)[O-])]", "[C;X4]-[N;H2]", "[#6]~[#7]", "[O-]-[N+]=O", "[n;H1;r5]:c"]
    for smarts in queries:
        pattern = Chem.MolFromSmarts(smarts)
        candidates, _ = screen.candidates(pattern_screen(pattern))
        for i, mol in enumerate(mols):
            if mol.HasSubstructMatch(pattern):
                assert candidates[i], (smarts, smiles[i])
