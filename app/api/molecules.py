"""Molecules: per-run pages with sorting and filters, one molecule with its route, SVG, exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.api.deps import SESSION, get_db
from app.api.errors import ApiError, chem_field_error
from app.api.runs import get_run
from app.api.schemas import MoleculeOut, MoleculePageOut
from app.chem.parsing import ChemQueryError, parse_smarts, parse_smiles
from app.core.db import Database
from app.core.models import Molecule
from app.runs.export import MEDIA_TYPES, ExportFormat, export_stream
from app.runs.queries import MoleculeQuery, decode_cursor, list_molecules, parse_score_ranges

router = APIRouter(tags=["molecules"])


def molecule_out(mol: Molecule, similarity: float | None = None) -> MoleculeOut:
    return MoleculeOut(
        id=mol.id,
        run_id=mol.run_id,
        smiles=mol.smiles,
        inchikey=mol.inchikey,
        reward=mol.reward,
        scores=mol.scores or {},
        route=mol.route,
        step=mol.step,
        times_sampled=mol.times_sampled,
        first_seen=mol.first_seen,
        similarity=similarity,
        error=mol.error,
    )


MAX_ID = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT
MoleculeId = Annotated[int, FastApiPath(ge=1, le=MAX_ID, description="a molecule id")]


def _check_cursor(cursor: str | None) -> None:
    """A molecule cursor is two numbers (sort value, id) this API encoded; anything else, or numbers
    out of the database's integer range, is refused here rather than failing inside the query."""
    if cursor is None:
        return
    value, last_id = decode_cursor(cursor, 2)
    numbers = (value, last_id)
    if (
        not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers)
        or not isinstance(last_id, int)
        or any(isinstance(v, int) and abs(v) > MAX_ID for v in numbers)
    ):
        raise ApiError(422, "cursor: cursor is not one this API returned", "cursor")


def _check_chem(smarts: str | None, similar_to: str | None) -> None:
    try:
        if smarts is not None:
            parse_smarts(smarts)
    except ChemQueryError as error:
        raise chem_field_error("smarts", error) from None
    try:
        if similar_to is not None:
            parse_smiles(similar_to)
    except ChemQueryError as error:
        raise chem_field_error("similar_to", error) from None


@router.get("/runs/{run_id}/molecules", response_model=MoleculePageOut)
def run_molecules(
    run_id: str,
    request: Request,
    sort: str = Query("-reward", description="reward, step, id, times_sampled or a score name; '-' = desc"),
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    reward_min: float | None = None,
    reward_max: float | None = None,
    score_range: list[str] = Query(default_factory=list, description="NAME:MIN:MAX, either bound optional"),
    smarts: str | None = Query(None, description="substructure filter"),
    similar_to: str | None = Query(None, description="query SMILES for Tanimoto similarity"),
    min_similarity: float = Query(0.5, ge=0, le=1),
    session: Session = SESSION,
) -> MoleculePageOut:
    get_run(session, run_id)
    _check_cursor(cursor)
    _check_chem(smarts, similar_to)
    query = MoleculeQuery(
        run_id=run_id,
        sort=sort,
        limit=limit,
        cursor=cursor,
        reward_min=reward_min,
        reward_max=reward_max,
        score_ranges=parse_score_ranges(score_range),
        smarts=smarts,
        similar_to=similar_to,
        min_similarity=min_similarity,
    )
    page = list_molecules(session, query, request.app.state.chem_cache)
    return MoleculePageOut(
        items=[molecule_out(m, s) for m, s in page.items], next_cursor=page.next_cursor, scanned=page.scanned
    )


def _get_molecule(session: Session, molecule_id: int) -> Molecule:
    mol = session.get(Molecule, molecule_id)
    if mol is None:
        raise ApiError(404, f"molecule_id: no molecule {molecule_id}", "molecule_id")
    return mol


@router.get("/molecules/{molecule_id}", response_model=MoleculeOut)
def molecule_detail(molecule_id: MoleculeId, session: Session = SESSION) -> MoleculeOut:
    return molecule_out(_get_molecule(session, molecule_id))


@router.get("/molecules/{molecule_id}/svg")
def molecule_svg(
    molecule_id: MoleculeId,
    request: Request,
    width: int = Query(300, ge=50, le=2000),
    height: int = Query(300, ge=50, le=2000),
    session: Session = SESSION,
) -> Response:
    smiles = _get_molecule(session, molecule_id).smiles
    try:
        svg = request.app.state.svg(smiles, width, height)
    except ChemQueryError as error:
        raise ApiError(422, f"smiles: {error}", "smiles") from None
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/runs/{run_id}/export")
def export_run(
    run_id: str,
    format: ExportFormat = Query("csv"),
    session: Session = SESSION,
    db: Database = Depends(get_db),
) -> StreamingResponse:
    get_run(session, run_id)
    session.commit()  # the stream reads in its own short sessions; hold no connection meanwhile
    headers = {"Content-Disposition": f'attachment; filename="{run_id}.{format}"'}
    return StreamingResponse(
        export_stream(db, run_id, format), media_type=MEDIA_TYPES[format], headers=headers
    )
