"""Template files: the shared sets load unchanged, bad lines are reported, templates run correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdkit import Chem

from reactions.templates import TemplateParseError, load_template_set, parse_template_lines

SHARED_SETS = {  # file: (templates, unimolecular, bimolecular)
    "synflownet_hb.txt": (105, 13, 92),
    "rxnflow_hb_edited.txt": (71, 13, 58),
    "rxnflow_real.txt": (109, 7, 102),
}


@pytest.mark.parametrize(("name", "counts"), SHARED_SETS.items())
def test_shared_template_sets_load_unchanged(
    shared_data: Path, name: str, counts: tuple[int, int, int],
) -> None:
    path = shared_data / "templates" / name
    templates = load_template_set(path)
    assert (len(templates), len(templates.unimolecular), len(templates.bimolecular)) == counts
    lines = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    assert [t.smarts for t in templates] == lines
    assert [t.index for t in templates] == list(range(len(templates)))
    assert templates.n_slots == counts[1] + 2 * counts[2]


def test_names_comments_and_blank_lines() -> None:
    templates = parse_template_lines([
        "# a comment",
        "",
        "[C:1](=[O:2])[OH].[NH2:3]>>[C:1](=[O:2])[N:3]\tamide coupling",
        "[N:1]C(=O)OC(C)(C)C>>[N:1]   # Boc removal",
        "[c:1][Br]>>[c:1]",
    ])
    assert [t.name for t in templates] == ["amide coupling", "Boc removal", "template_2"]
    assert [t.arity for t in templates] == [2, 1, 1]


def test_bad_line_names_line_number_and_rdkit_reason() -> None:
    lines = ["# header", "[C:1](=O)O.[N:2]>>[C:1][N:2]", "[C:1]N[N:2>>C broken"]
    with pytest.raises(TemplateParseError) as caught:
        parse_template_lines(lines, source="mine.txt")
    error = caught.value
    assert error.line_number == 3
    assert "mine.txt, line 3" in str(error)
    assert "syntax error" in error.reason and "[C:1]N[N:2" in error.reason


def test_three_reactant_template_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("[C:1]=O.[N:2].[N:3]>>[C:1]([N:2])[N:3]\n")
    with pytest.raises(TemplateParseError, match="line 1: 3 reactant templates"):
        load_template_set(path)


def test_run_returns_sorted_unique_canonical_products() -> None:
    (template,) = parse_template_lines(["[C:1](=[O:2])[OH].[N;H2,H1;!$(NC=O):3]>>[C:1](=[O:2])[N:3]"])
    acid = Chem.MolFromSmiles("OC(=O)c1ccc(C(=O)O)cc1")  # two equivalent acid groups
    amine = Chem.MolFromSmiles("NCC")
    products = template.run([acid, amine])
    assert products == ["CCNC(=O)c1ccc(C(=O)O)cc1"]
    assert template.run([amine, acid]) == []
    with pytest.raises(ValueError, match="takes 2 reactants"):
        template.run([acid])


def test_unsanitisable_products_are_dropped() -> None:
    # Joining two carbonyl carbons onto a nitrogen that keeps its hydrogens makes 5-valent N.
    (template,) = parse_template_lines(["[C:1]=[O:2].[N:3]>>[C:1](=[O:2])=[N:3]"])
    assert template.run([Chem.MolFromSmiles("C=O"), Chem.MolFromSmiles("CN(C)C")]) == []


def test_content_hash_tracks_content() -> None:
    a = parse_template_lines(["[c:1][Br]>>[c:1]\tdebromination"])
    b = parse_template_lines(["[c:1][Br]>>[c:1]\tdebromination"])
    c = parse_template_lines(["[c:1][I]>>[c:1]\tdeiodination"])
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_matches_uses_the_slot_pattern() -> None:
    (template,) = parse_template_lines(["[c:1][Br].[NH2:2]>>[c:1][N:2]"])
    bromide, amine = Chem.MolFromSmiles("Brc1ccccc1"), Chem.MolFromSmiles("NC")
    assert template.matches(bromide, 0) and not template.matches(bromide, 1)
    assert template.matches(amine, 1) and not template.matches(amine, 0)
