"""The catalogue of component and transform types with their parameter JSON schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from synflow.rewards.components import component_registry
from synflow.rewards.transforms import transform_registry


def _entry(type_name: str, cls: type[BaseModel]) -> dict[str, Any]:
    doc = (cls.__doc__ or "").strip()
    return {"type": type_name, "description": " ".join(doc.split()), "schema": cls.model_json_schema()}


def component_catalogue() -> list[dict[str, Any]]:
    """Every component type: ``{"type", "description", "schema"}`` (the service's catalogue)."""
    return [_entry(name, cls) for name, cls in component_registry().items()]


def transform_catalogue() -> list[dict[str, Any]]:
    """Every transform type: ``{"type", "description", "schema"}``."""
    return [_entry(name, cls) for name, cls in transform_registry().items()]
