"""``synflow score REWARD_CONFIG SMILES_FILE``: score molecules with a reward definition, like
REINVENT's scoring mode. One JSON object per line: ``smiles``, ``canonical_smiles``, ``reward``,
``scores`` (per component, raw values as ``NAME_raw``; null where a raw value could not be
computed), ``valid``."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO

import typer


def read_smiles(path: str) -> Iterator[str]:
    """SMILES from ``.smi`` (first field per line), ``.csv``/``.csv.gz`` (a SMILES column) or ``-``."""
    if path == "-":
        yield from _from_lines(sys.stdin, csv=False)
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as handle:
        yield from _from_lines(handle, csv=".csv" in Path(path).name.lower())


def _from_lines(handle: IO[str], csv: bool) -> Iterator[str]:
    column = 0
    if csv:
        header = [h.strip().lower() for h in next(handle).split(",")]
        if "smiles" not in header:
            raise typer.BadParameter(f"no SMILES column in the CSV header {header}")
        column = header.index("smiles")
    for line in handle:
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\n").split(",") if csv else line.split()
        yield fields[column].strip()


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(islice(items, size)):
        yield batch


def register(cli: typer.Typer) -> None:
    @cli.command("score")
    def score(
        reward_config: Path = typer.Argument(..., exists=True, dir_okay=False,
                                             help="reward definition, JSON or TOML (or a RunConfig)"),
        smiles_file: str = typer.Argument(..., help=".smi, .csv, .csv.gz with a SMILES column, or -"),
        output: Path | None = typer.Option(None, "--output", "-o", help="JSON lines file; default stdout"),
        batch_size: int = typer.Option(256, min=1, help="molecules scored per call"),
    ) -> None:
        """Score molecules with a reward definition and print JSON lines."""
        from pydantic import ValidationError

        from synflow.rewards import RewardPluginError, build_reward, load_reward_config

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
        except RewardPluginError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        finally:
            if output:
                sink.close()
        typer.echo(f"scored {reward.oracle_calls} unique molecules", err=True)
