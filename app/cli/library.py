"""``synflow library``: standardise a building-block file and index it against a template set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from reactions.index import build_compatibility_index
from reactions.library import load_building_blocks
from reactions.report import library_summary
from reactions.standardise import StandardisationSettings
from reactions.storage import save_library
from reactions.templates import TemplateParseError, default_template_set, load_template_set


def register(cli: typer.Typer) -> None:
    library_cli = typer.Typer(help="Building-block libraries and their compatibility index.",
                              no_args_is_help=True)
    cli.add_typer(library_cli, name="library")

    @library_cli.command("build")
    def build(
        blocks: Path = typer.Argument(..., exists=True, dir_okay=False,
                                      help="building blocks: .smi, .csv or .sdf, gzipped or not"),
        templates: Path | None = typer.Option(None, "--templates", exists=True, dir_okay=False,
                                              help="reaction template file (default: the bundled set)"),
        out: Path = typer.Option(..., "--out", file_okay=False, help="output folder"),
        workers: int | None = typer.Option(None, help="processes (default: all cores)"),
        remove_stereo: bool = typer.Option(False, help="drop stereochemistry while standardising"),
        max_heavy_atoms: int = typer.Option(60, help="reject blocks with more heavy atoms"),
    ) -> None:
        """Standardise BLOCKS, build the template × slot → blocks index in OUT, print a JSON summary."""
        try:
            template_set = load_template_set(templates) if templates else default_template_set()
        except TemplateParseError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=2) from None
        started = time.perf_counter()
        settings = StandardisationSettings(remove_stereo=remove_stereo, max_heavy_atoms=max_heavy_atoms)
        library = load_building_blocks(blocks, settings, workers=workers)
        save_library(library, out / "library")
        index = build_compatibility_index(library, template_set, cache_dir=out / "index", workers=workers)
        summary = library_summary(library, template_set, index)
        unmatched = index.unmatched_blocks().tolist()
        lines = [f"{library.smiles[i]}\t{library.ids[i]}\n" for i in unmatched]
        (out / "unmatched.smi").write_text("".join(lines))
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["out"] = str(out)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        typer.echo(json.dumps(summary, indent=2))
