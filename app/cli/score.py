"""``synflow score REWARD_CONFIG SMILES_FILE``: score molecules with a reward definition, like
REINVENT's scoring mode. One JSON object per line: ``smiles``, ``canonical_smiles``, ``reward``,
``scores`` (per component, raw values as ``NAME_raw``; null where a raw value could not be
computed), ``valid``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import typer
from pydantic import ValidationError
from rdkit import Chem

from reactions.readers import MoleculeFileError, read_records
from synflow.rewards import RewardPluginError, build_reward, load_reward_config
from synflow.rewards.assay import AssayModelFileError


def read_smiles(path: str) -> Iterator[str]:
    """SMILES from ``.smi``, ``.csv`` or ``.sdf`` (gzipped or not; ``reactions.readers``) or ``-``."""
    for record in read_records(path):
        if record.molblock:
            mol = Chem.MolFromMolBlock(record.molblock)
            yield Chem.MolToSmiles(mol) if mol is not None else ""
        else:
            yield record.smiles


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(islice(items, size)):
        yield batch


def register(cli: typer.Typer) -> None:
    @cli.command("score")
    def score(
        reward_config: Path = typer.Argument(..., exists=True, dir_okay=False,
                                             help="reward definition, JSON or TOML (or a RunConfig)"),
        smiles_file: str = typer.Argument(
            ..., help=".smi, .csv (a SMILES column) or .sdf, gzipped or not, or -"
        ),
        output: Path | None = typer.Option(None, "--output", "-o", help="JSON lines file; default stdout"),
        batch_size: int = typer.Option(256, min=1, help="molecules scored per call"),
    ) -> None:
        """Score molecules with a reward definition and print JSON lines."""
        try:
            config = load_reward_config(reward_config)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                typer.echo(f"{reward_config}: {where}: {error['msg']}", err=True)
            raise typer.Exit(2) from None
        sink = output.open("w") if output else sys.stdout
        try:
            with build_reward(config) as reward:
                for batch in _batches(read_smiles(smiles_file), batch_size):
                    for molecule in reward.score(batch):
                        sink.write(json.dumps(molecule.to_json()) + "\n")
        except MoleculeFileError as exc:
            typer.echo(f"error: {smiles_file}: {exc}", err=True)
            raise typer.Exit(2) from None
        except RewardPluginError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except AssayModelFileError as exc:  # an assay_model component's file: missing, changed, not a model
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            if output:
                sink.close()
        typer.echo(f"scored {reward.oracle_calls} unique molecules", err=True)
