"""Purchasability catalogues seen from the service: uploaded ones (``libraries`` rows of kind
``catalogue``), the bundled bloom filter, and a run's ``purchasable`` components pinned to a file
when the run is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.models import Library
from app.libraries.catalogue import Inspection
from synflow.config import ConfigError, RunConfig
from synflow.rewards.components import PurchasableComponent
from synflow.rewards.purchasable import BUNDLED_CATALOGUES, read_catalogue

CATALOGUES = "catalogue"
# ZINC20 in stock, as molbloom's own catalogue list describes the bundled filter
BUNDLED_SIZES = {"zinc-instock-mini": 9_227_726}


def bundled_catalogues() -> list[dict[str, Any]]:
    """The bloom filters bundled with molbloom, as catalogue entries (name, kind, size)."""
    return [
        {"name": name, "kind": CATALOGUES, "size": BUNDLED_SIZES.get(name, 0)} for name in BUNDLED_CATALOGUES
    ]


def inspect_catalogue(path: Path) -> Inspection:
    """Read an uploaded catalogue as the scorer will (InChIKeys of the neutral largest fragment):
    its size in distinct molecules, and every row that gave no molecule, with the reason."""
    found = read_catalogue(path)
    rejected = [{"line": r.line, "smiles": r.smiles, "reason": r.reason} for r in found.rejected]
    return Inspection(size=len(found.keys), rejected_rows=rejected, usable=bool(found.keys))


def resolve_catalogues(config: RunConfig, session: Session) -> RunConfig:
    """Pin every ``purchasable`` component's ``source`` to a file the server holds: the bundled
    filter stays as it is; an uploaded catalogue's name, or its stored path (a stored config sent
    again), becomes the path. Anything else is refused, so an API caller cannot make the worker read
    an arbitrary file. Raises ``ConfigError`` naming ``reward.components.<i>.source``."""
    components = list(config.reward.components)
    errors: list[tuple[str, str]] = []
    for i, component in enumerate(components):
        if not isinstance(component, PurchasableComponent) or component.is_bundled():
            continue
        row = _lookup(session, component.source)
        if row is None or row.path is None:
            errors.append((f"reward.components.{i}.source", _unknown(session, component.source)))
        elif not Path(row.path).is_file():
            errors.append((f"reward.components.{i}.source", f"catalogue {row.name!r}: its file is gone"))
        else:
            components[i] = component.model_copy(update={"source": row.path})
    if errors:
        raise ConfigError(errors)
    reward = config.reward.model_copy(update={"components": components})
    return config.model_copy(update={"reward": reward})


def _lookup(session: Session, source: str) -> Library | None:
    uploaded = select(Library).where(Library.kind == CATALOGUES, Library.bundled.is_(False))
    by_name = session.scalars(uploaded.where(Library.name == source)).first()
    return by_name or session.scalars(uploaded.where(Library.path == source)).first()


def _unknown(session: Session, source: str) -> str:
    names = session.scalars(
        select(Library.name).where(Library.kind == CATALOGUES).order_by(Library.name).limit(20)
    ).all()
    known = sorted({*BUNDLED_CATALOGUES, *names})
    return (
        f"no catalogue named {source[:200]!r}; use one of: {', '.join(known)} "
        "(upload your own: POST /api/v1/catalogues)"
    )


def catalogue_name(session: Session, source: str) -> str:
    """An uploaded catalogue's name for its file (a resolved run's ``source``), else ``source``."""
    name = session.scalar(
        select(Library.name).where(Library.kind == CATALOGUES, Library.path == source).limit(1)
    )
    return name or source
