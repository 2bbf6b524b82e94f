"""The README's fenced examples name only commands, flags, endpoints, files and make targets that exist.

Every ``synflow …`` line in a fenced ``bash`` block is walked through the real command tree (each
sub-command, each ``--flag``, the number of positional arguments); every ``curl`` line's method and
path must match a route of the real app, and its query parameters must be ones that route reads;
``make`` targets must be in the Makefile; files under ``examples/`` must exist; every ``import`` of a
fenced ``python`` block must resolve. Running the commands themselves is ``test_readme_commands.py``.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def fenced_blocks(language: str, text: str | None = None) -> list[str]:
    text = README.read_text() if text is None else text
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def command_lines(prefix: str) -> list[list[str]]:
    """Shell lines of the fenced bash blocks (continuations joined, comments and redirects cut) that
    run ``prefix``, as argument lists starting after it."""
    found = []
    for block in fenced_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            for cut in (">", "|", "&&", ";"):
                if cut in tokens:
                    tokens = tokens[: tokens.index(cut)]
            if tokens and Path(tokens[0]).name == prefix:
                found.append(tokens[1:])
    return found


def click_root() -> Any:
    """The real command tree (Typer's vendored click: groups have ``commands``)."""
    from app.cli.main import build_cli

    root = typer.main.get_command(build_cli())
    assert hasattr(root, "commands")
    return root


def check_synflow_line(root: Any, args: list[str]) -> None:
    command = root
    path = ["synflow"]
    while hasattr(command, "commands"):
        assert args, f"{' '.join(path)} needs a sub-command"
        name, args = args[0], args[1:]
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join(path)} {name}`: no such command"
        command, path = sub, [*path, name]
    params = command.params
    options = {o: p for p in params if p.param_type_name == "option" for o in p.opts + p.secondary_opts}
    arguments = [p for p in params if p.param_type_name == "argument"]
    positional = 0
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("-") and token != "-":
            flag = token.split("=", 1)[0]
            assert flag in options, f"`{' '.join(path)}` has no option {flag}"
            if not options[flag].is_flag and "=" not in token:
                i += 1  # the option's value
        else:
            positional += 1
        i += 1
    assert positional <= len(arguments), (
        f"`{' '.join(path)}` takes {len(arguments)} arguments, got {positional}"
    )
    required = sum(1 for a in arguments if a.required)
    assert positional >= required, f"`{' '.join(path)}` needs {required} arguments, got {positional}"


def test_every_synflow_example_names_real_commands_and_flags() -> None:
    root = click_root()
    lines = command_lines("synflow")
    assert len(lines) >= 10, "the README shows the command line in fenced bash blocks"
    for args in lines:
        check_synflow_line(root, args)


def test_the_checker_catches_a_wrong_command_or_flag() -> None:
    root = click_root()
    for bad in (["trian", "x.toml"], ["train", "x.toml", "--out", "o", "--stepz", "2"], ["export"]):
        with pytest.raises(AssertionError):
            check_synflow_line(root, bad)


def _curl_request(args: list[str]) -> tuple[str, str, list[str]]:
    method = "GET"
    url = ""
    for i, token in enumerate(args):
        if token == "-X":
            method = args[i + 1]
        elif "localhost:" in token or token.startswith("http"):
            url = token if token.startswith("http") else f"http://{token}"
    assert url, f"no URL in curl {' '.join(args)}"
    parts = urlsplit(url)
    return method, parts.path, [key for key, _ in parse_qsl(parts.query)]


def test_every_curl_example_names_a_real_endpoint_and_parameters() -> None:
    """Checked against the app's OpenAPI description: paths, methods and query parameters."""
    from app.core.settings import Settings
    from app.main import create_app

    paths = create_app(Settings(database_url="sqlite://")).openapi()["paths"]
    templates = {re.compile("^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(p)) + "$"): ops
                 for p, ops in paths.items()}
    lines = command_lines("curl")
    assert len(lines) >= 4
    for args in lines:
        method, path, query = _curl_request(args)
        operations = [ops[method.lower()] for regex, ops in templates.items()
                      if regex.match(path) and method.lower() in ops]
        assert operations, f"curl {method} {path}: no such endpoint"
        known = {p["name"] for op in operations for p in op.get("parameters", []) if p["in"] == "query"}
        unknown = set(query) - known
        assert not unknown, f"curl {method} {path}: unknown query parameters {sorted(unknown)}"


def test_make_targets_and_example_files_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    for args in command_lines("make"):
        for target in args:
            assert target in targets, f"make {target}: no such target"
    mentioned = set(re.findall(r"examples/[\w./-]+\w", README.read_text()))
    assert mentioned, "the README points to its example files"
    for name in mentioned:
        assert (ROOT / name).exists(), f"{name} is named in the README but missing"


def test_python_examples_import_what_exists() -> None:
    for block in fenced_blocks("python"):
        for module, names in re.findall(r"^from ([\w.]+) import ([\w, ]+)$", block, flags=re.M):
            loaded = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",")):
                assert hasattr(loaded, name), f"{module} has no {name}"


def test_json_fragments_of_a_run_config_validate() -> None:
    """A fenced ``json`` block that shows one RunConfig section (``"training": {...}``) validates."""
    from synflow.config import RunConfig

    fragments = [b for b in fenced_blocks("json") if b.lstrip().startswith('"')]
    assert fragments, "the samplers example is in the README"
    for fragment in fragments:
        body = json.loads("{" + fragment + "}")
        RunConfig.model_validate({"reward": {"components": [{"type": "qed"}]}, **body})
