"""Building a run's chemistry and policy network from its ``RunConfig``.

Shared by the learner (``synflow.trainer``) and the sampler actors (``synflow.actors``), so that a
sampler process builds exactly the network the learner trains and loads its weights.
"""

from __future__ import annotations

from models.featurize import BlockFeatures
from models.policy import SynthesisPolicy
from reactions.index import build_compatibility_index
from reactions.library import default_library, load_building_blocks
from reactions.templates import default_template_set, load_template_set
from synflow.chemistry import SynthesisChemistry
from synflow.config import EnvironmentConfig, RunConfig
from synflow.constraints import check_constraints, resolve_constraints
from synflow.schedules import beta_range

__all__ = ["build_policy", "constrained", "load_chemistry"]


def load_chemistry(env: EnvironmentConfig) -> SynthesisChemistry:
    """Library, templates and compatibility index named by the config (bundled defaults if unset)."""
    library = load_building_blocks(env.building_blocks) if env.building_blocks else default_library()
    templates = load_template_set(env.templates) if env.templates else default_template_set()
    index = build_compatibility_index(library, templates, cache_dir=env.cache_dir)
    # the retro-analysis store under cache_dir is shared by the run's samplers and by later runs
    chem = SynthesisChemistry(
        library,
        templates,
        index,
        env.max_reactions,
        env.min_reactions,
        store_dir=env.cache_dir,
        constraints=resolve_constraints(env, library),
    )
    check_constraints(chem)
    return chem


def constrained(chem: SynthesisChemistry, env: EnvironmentConfig) -> SynthesisChemistry:
    """``chem`` under the config's start blocks and scaffold (``chem`` itself when it already has
    them): a chemistry built elsewhere (tests, benchmarks) obeys the run's constraints too."""
    constraints = resolve_constraints(env, chem.library)
    if constraints == chem.constraints:
        return chem
    out = SynthesisChemistry(
        chem.library,
        chem.templates,
        chem.index,
        chem.max_reactions,
        chem.min_reactions,
        chem.cache_size,
        store_dir=chem.store_dir,
        fast=chem.fast,
        constraints=constraints,
    )
    check_constraints(out)
    return out


def build_policy(config: RunConfig, chem: SynthesisChemistry) -> tuple[SynthesisPolicy, BlockFeatures]:
    """The policy network of ``config`` over ``chem``'s library and templates (on the CPU), and the
    library's block features it scores blocks with."""
    lib = chem.library
    features = BlockFeatures(lib.fingerprints, lib.n_bits, lib.descriptors)
    m = config.model
    model = SynthesisPolicy(
        n_templates=len(chem.templates),
        max_depth=chem.max_reactions,
        fp_dim=features.fp_dim,
        desc_dim=features.desc_dim,
        beta_range=beta_range(config.conditioning, config.reward.beta),
        hidden=m.hidden,
        layers=m.layers,
        conv=m.conv,
        block_hidden=m.block_hidden,
        thermometer_bins=config.conditioning.thermometer_bins,
        preference_dim=len(config.preference_components or ()),
    )
    model.blocks.set_descriptor_stats(*features.descriptor_stats())
    return model, features
