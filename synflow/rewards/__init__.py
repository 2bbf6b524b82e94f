"""Rewards: scoring components, the 20 offline PMO oracles, docking, plugins, transforms, budgets.

``RewardConfig`` (pydantic) describes a reward; ``build_reward(config).score(smiles)`` returns a
``RewardBatch``; ``log_reward(r, beta, floor)`` is the GFlowNet target. Importing this package does
no work: scorers, the SA table, fingerprints and docking workers are built on demand.

Layers, each importing only from those below it (``tests/synflow/rewards/test_layers.py``):

1. ``results`` (``RewardBatch``, ``log_reward``) and ``errors``;
2. schemas, pure pydantic: ``tagged``, ``transforms``, ``components``, ``config``, ``registry``;
3. scorers, which take plain settings: ``base``, ``chem``, ``molecular``, ``pharm2d``, ``pmo``,
   ``docking``, ``plugins`` (schemas and scorers never import each other);
4. ``factory``: component config → scorer;
5. ``reward``: ``Reward`` and ``build_reward``.
"""

from synflow.rewards.components import ComponentConfig, component_registry
from synflow.rewards.config import RewardConfig, load_reward_config
from synflow.rewards.errors import BudgetExhausted, RewardPluginError
from synflow.rewards.registry import component_catalogue, transform_catalogue
from synflow.rewards.results import DEFAULT_LOG_REWARD_FLOOR, MoleculeScore, RewardBatch, log_reward
from synflow.rewards.reward import Reward, build_reward
from synflow.rewards.transforms import TransformConfig, transform_registry

__all__ = [
    "DEFAULT_LOG_REWARD_FLOOR",
    "BudgetExhausted",
    "ComponentConfig",
    "MoleculeScore",
    "Reward",
    "RewardBatch",
    "RewardConfig",
    "RewardPluginError",
    "TransformConfig",
    "build_reward",
    "component_catalogue",
    "component_registry",
    "load_reward_config",
    "log_reward",
    "transform_catalogue",
    "transform_registry",
]
