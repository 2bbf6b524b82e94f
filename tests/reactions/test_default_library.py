"""The bundled open library: big enough, small on disk, every block usable, provenance stated."""

from __future__ import annotations

from importlib import resources

from reactions.index import compute_compatibility_index
from reactions.library import DEFAULT_LIBRARY_RESOURCE, default_library
from reactions.templates import default_template_set


def test_default_library_blocks_all_fit_a_default_template() -> None:
    library = default_library()
    assert len(library) >= 5_000
    assert library.rejected == []  # shipped data is already standardised
    assert all(i.startswith(("MOSES-train-", "NCI-first5K-")) for i in library.ids)
    index = compute_compatibility_index(library, default_template_set())
    assert index.unmatched_blocks().size == 0
    # Real handles of several kinds, not one reaction's worth.
    templates = default_template_set()
    for name, slot in [("amide coupling (carboxylic acid + amine)", 0),
                       ("amide coupling (carboxylic acid + amine)", 1),
                       ("reductive amination (aldehyde + amine)", 0),
                       ("Buchwald-Hartwig amination (aryl halide + amine)", 0),
                       ("Williamson etherification (alkyl halide + alcohol or phenol)", 1),
                       ("Boc deprotection", 0)]:
        assert index.count(templates.by_name(name).index, slot) >= 20, (name, slot)


def test_default_library_is_small_and_documented() -> None:
    data = resources.files("reactions.data")
    assert len(data.joinpath(DEFAULT_LIBRARY_RESOURCE).read_bytes()) < 2_000_000
    readme = data.joinpath("README.md").read_text()
    assert "molsets" in readme and "MIT" in readme and "public domain" in readme
    assert "Insilico Medicine" in data.joinpath("LICENSE-MOSES.txt").read_text()


def test_default_objects_are_cached_and_read_only() -> None:
    assert default_library() is default_library()
    assert default_template_set() is default_template_set()
    assert not default_library().fingerprints.flags.writeable
