"""Molecules: per-run pages with sorting and filters, one molecule with its route, SVG, exports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.api.deps import SESSION, block_flags, get_db, get_settings
from app.api.errors import ApiError, chem_field_error
from app.api.runs import get_run
from app.api.schemas import (
    BuildingBlockFlagOut,
    BuildingBlocksOut,
    DockedPoseOut,
    ErrorOut,
    MoleculeOut,
    MoleculePageOut,
    ParetoOut,
    ParetoPoint,
)
from app.chem.parsing import ChemQueryError, parse_smarts, parse_smiles
from app.core.db import Database
from app.core.models import Molecule
from app.core.settings import Settings
from app.libraries.purchasable import catalogue_name
from app.runs.export import MEDIA_TYPES, ExportFormat, export_stream
from app.runs.fronts import MAX_SAMPLE, choose_objectives, load_molecules, read_front, run_objectives, spread
from app.runs.pareto import FrontTooLarge
from app.runs.poses import DockedPose, docked_pose, run_pose_dir
from app.runs.purchasability import BlockFlags, purchasable_source
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
        alerts=mol.alerts,
        purchasable=mol.purchasable,
        pose_url=None if mol.pose is None else f"/api/v1/molecules/{mol.id}/pose",
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
    purchasable: bool | None = Query(
        None, description="only molecules marked purchasable (true) or not (false)"
    ),
    alerts: Literal["none", "any"] | None = Query(
        None, description="only molecules with no structural alert (none) or at least one (any)"
    ),
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
        purchasable=purchasable,
        alerts=alerts,
    )
    page = list_molecules(session, query, request.app.state.chem_cache)
    return MoleculePageOut(
        items=[molecule_out(m, s) for m, s in page.items], next_cursor=page.next_cursor, scanned=page.scanned
    )


@router.get(
    "/runs/{run_id}/pareto",
    response_model=ParetoOut,
    summary="The non-dominated (Pareto) molecules of a run over chosen scores",
    description="The run's molecules that no other molecule beats on every chosen score component: a "
    "molecule is dominated when another is at least as good on every score and better on one (all "
    "scores maximised; molecules with equal scores do not dominate each other). `scores`: "
    "comma-separated component names of the run's reward, at least two (default: every `score` "
    "component). Molecules missing a chosen score (null or NaN) are left out and counted in "
    "`excluded`. Two scores take one O(n log n) sweep; three or more a sort-filter skyline whose work "
    "is bounded (a 422 naming `scores` when too many molecules are mutually non-dominated). `sample` "
    "adds that many comparable molecules (a uniform draw, fixed per molecule id) for a scatter plot.",
    responses={
        404: {"model": ErrorOut, "description": "no run with this id"},
        422: {"model": ErrorOut, "description": "`scores` names an unknown component, repeats one or names "
              "fewer than two; or the front is too large to compute within the work bound"},
    },
)
def run_pareto(
    run_id: str,
    scores: str | None = Query(
        None, description="comma-separated score components, e.g. qed,sa (default: every score component)"
    ),
    limit: int = Query(1000, ge=1, le=5000, description="non-dominated molecules returned at most"),
    sample: int = Query(0, ge=0, le=MAX_SAMPLE, description="comparable molecules to add for a scatter"),
    session: Session = SESSION,
) -> ParetoOut:
    run = get_run(session, run_id)
    objectives = run_objectives(session, run)
    names = choose_objectives(scores, objectives)
    try:
        front = read_front(session, run_id, names, sample)
    except FrontTooLarge as error:
        raise ApiError(422, f"scores: {error}; choose fewer scores", "scores") from None
    shown = front.ids[spread(len(front.ids), limit)]
    return ParetoOut(
        run_id=run_id,
        scores=names,
        available=objectives.allowed,
        items=[molecule_out(m) for m in load_molecules(session, shown.tolist())],
        front_size=len(front.ids),
        considered=front.considered,
        excluded=front.excluded,
        sample=[
            ParetoPoint(id=i, values=v)
            for i, v in zip(front.sample_ids.tolist(), front.sample_values.tolist(), strict=True)
        ],
    )


def _get_molecule(session: Session, molecule_id: int) -> Molecule:
    mol = session.get(Molecule, molecule_id)
    if mol is None:
        raise ApiError(404, f"molecule_id: no molecule {molecule_id}", "molecule_id")
    return mol


@router.get("/molecules/{molecule_id}", response_model=MoleculeOut)
def molecule_detail(molecule_id: MoleculeId, session: Session = SESSION) -> MoleculeOut:
    return molecule_out(_get_molecule(session, molecule_id))


@router.get(
    "/molecules/{molecule_id}/building-blocks",
    response_model=BuildingBlocksOut,
    summary="The building blocks of a molecule's route, flagged purchasable or not",
    description="Each building block of the route, in synthesis order, checked against the catalogue of "
    "the run's first `purchasable` reward component (the bundled `zinc-instock-mini` bloom filter: "
    "'probably purchasable'; an uploaded catalogue: exact). `purchasable` is null for every block when "
    "the run has no such component.",
    responses={404: {"model": ErrorOut, "description": "no molecule with this id"}},
)
def molecule_building_blocks(
    molecule_id: MoleculeId,
    session: Session = SESSION,
    flags: BlockFlags = Depends(block_flags),
) -> BuildingBlocksOut:
    mol = _get_molecule(session, molecule_id)
    config = get_run(session, mol.run_id).config
    found = purchasable_source(config)
    items = [BuildingBlockFlagOut(**b) for b in flags.blocks(config, mol.route)]
    source = None if found is None else catalogue_name(session, found[0])
    return BuildingBlocksOut(molecule_id=mol.id, source=source, items=items)


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
    settings: Settings = Depends(get_settings),
    flags: BlockFlags = Depends(block_flags),
) -> StreamingResponse:
    run = get_run(session, run_id)
    pose_dir = run_pose_dir(session, run, settings.data_dir)  # SDF: docked poses as 3-D blocks
    session.commit()  # the stream reads in its own short sessions; hold no connection meanwhile
    headers = {"Content-Disposition": f'attachment; filename="{run_id}.{format}"'}
    return StreamingResponse(
        export_stream(db, run_id, format, pose_dir, flags), media_type=MEDIA_TYPES[format], headers=headers
    )


_NO_POSE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no molecule with this id, or it has no kept docked pose"}
}


def _docked(session: Session, molecule_id: int, settings: Settings) -> DockedPose:
    mol = _get_molecule(session, molecule_id)
    pose = docked_pose(session, mol, settings.data_dir)
    if pose is None:
        raise ApiError(
            404, f"molecule_id: molecule {molecule_id} has no docked pose (no docking component kept one)",
            "molecule_id",
        )
    return pose


@router.get(
    "/molecules/{molecule_id}/docking",
    response_model=DockedPoseOut,
    summary="A molecule's docked pose: links, box, affinity",
    description="Where to fetch the molecule's best docked pose (Vina's top mode, SDF) and the receptor "
    "it was docked in, with the docking box (centre and edges, Å) and the pose's affinity (kcal/mol).",
    responses=_NO_POSE,
)
def molecule_docking(
    molecule_id: MoleculeId, session: Session = SESSION, settings: Settings = Depends(get_settings)
) -> DockedPoseOut:
    pose = _docked(session, molecule_id, settings)
    setup = pose.setup
    return DockedPoseOut(
        molecule_id=molecule_id,
        pose_url=f"/api/v1/molecules/{molecule_id}/pose",
        receptor_url=None if pose.receptor is None else f"/api/v1/molecules/{molecule_id}/receptor",
        receptor_name=setup.get("receptor"),
        center=setup.get("center"),
        size=setup.get("size"),
        affinity=pose.affinity(),
        exhaustiveness=setup.get("exhaustiveness"),
        seed=setup.get("seed"),
    )


@router.get(
    "/molecules/{molecule_id}/pose",
    response_class=Response,
    summary="A molecule's docked pose (SDF)",
    description="The molecule's best docked pose as one SDF record: 3-D coordinates with hydrogens, the "
    "bond orders of its SMILES, and the data fields smiles, vina_affinity (kcal/mol), box_center and "
    "box_size. Kept when a docking component docked it (`pose_dir`; the service's: DATA_DIR/poses).",
    responses={200: {"content": {"chemical/x-mdl-sdfile": {}}, "description": "an SDF record"}, **_NO_POSE},
)
def molecule_pose(
    molecule_id: MoleculeId, session: Session = SESSION, settings: Settings = Depends(get_settings)
) -> Response:
    pose = _docked(session, molecule_id, settings)
    headers = {"Content-Disposition": f'inline; filename="molecule-{molecule_id}-pose.sdf"'}
    return Response(pose.sdf.read_bytes(), media_type="chemical/x-mdl-sdfile", headers=headers)


@router.get(
    "/molecules/{molecule_id}/receptor",
    response_class=Response,
    summary="The receptor a molecule was docked in (PDBQT)",
    description="The receptor structure the molecule's pose was docked in: the run's docking receptor, as "
    "the docking component copied it beside the poses when it docked (no other file is served).",
    responses={200: {"content": {"chemical/x-pdbqt": {}}, "description": "a PDBQT file"}, **_NO_POSE},
)
def molecule_receptor(
    molecule_id: MoleculeId, session: Session = SESSION, settings: Settings = Depends(get_settings)
) -> Response:
    pose = _docked(session, molecule_id, settings)
    if pose.receptor is None:
        message = f"molecule_id: the receptor of molecule {molecule_id}'s pose is missing"
        raise ApiError(404, message, "molecule_id")
    headers = {
        "Content-Disposition": 'inline; filename="receptor.pdbqt"',
        "Cache-Control": "private, max-age=3600",  # named by content: the same set-up, the same file
    }
    return Response(pose.receptor.read_bytes(), media_type="chemical/x-pdbqt", headers=headers)
