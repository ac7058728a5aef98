"""The command line starts without the heavy libraries, and its shared options are
defined once: every selecting command offers them, with help, and builds the same
:class:`~catalog.selection.Selection` from them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from builders import random_digits, write_image_folder
from typer.main import get_command
from typer.testing import CliRunner

import catalog
from catalog.api.options import SELECTION_OPTIONS
from catalog.cli import app
from catalog.cli import export as export_command
from catalog.cli.options import DB_ENV, with_selection
from catalog.db import engine
from catalog.export.formats import WRITERS
from catalog.export.layouts import FORMATS, LAYOUTS
from catalog.export.lists import LISTS
from catalog.selection import Selection

ROOT = Path(__file__).resolve().parents[1]
COMMAND = get_command(app)
SELECTING = {"query": (), "count": ("order", "limit", "offset"), "export": (), "sheet": ()}


#: Packages a count must not import (top-level names, or catalog's own subpackages).
HEAVY_FOR_COUNT = ("numpy", "PIL", "alembic", "faiss", "torch", "pyarrow", "catalog.audit",
                   "catalog.identity", "catalog.export", "catalog.similarity",
                   "catalog.sources")  # fmt: skip


def imported_by(*args: str) -> tuple[str, list[str]]:
    """Run ``python -X importtime -m catalog ARGS``; its output and the modules it imported."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "catalog", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout, re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, re.MULTILINE)


@pytest.mark.parametrize("args", [["--help"], ["query", "--help"], ["export", "--help"]])
def test_help_imports_no_numpy_sqlalchemy_or_pillow(args: list[str]) -> None:
    out, imported = imported_by(*args)
    assert "Usage: mnist-catalog" in out
    assert "catalog.cli" in imported  # the check sees this checkout's imports
    heavy = [name for name in imported if name.split(".")[0] in ("numpy", "sqlalchemy", "PIL")]
    assert heavy == []


def test_count_imports_no_numpy_pillow_alembic_or_audit(tmp_path: Path, db_url: str) -> None:
    """A count needs SQLAlchemy and the selection's SQL, not numpy, Pillow, Alembic (the
    catalog is at head), the audit or the writers."""
    pixels, labels = random_digits(12, seed=1)
    labels[:] = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    write_image_folder(tmp_path / "drawn", {"train": (pixels[:9], labels[:9]),
                                            "test": (pixels[9:], labels[9:])})  # fmt: skip
    with catalog.Catalog.open(db_url) as opened:
        opened.ingest(tmp_path / "drawn", dataset="drawn")
    out, imported = imported_by("--db", db_url, "count", "--by", "split,label")
    assert out.split() == [
        "split", "label", "count", "test", "0", "1", "test", "1", "1", "test", "2", "1",
        "train", "0", "3", "train", "1", "3", "train", "2", "3", "total", "12",
    ]  # fmt: skip
    assert "catalog.select.counts" in imported  # the check sees this checkout's imports
    heavy = [m for m in imported if any(m == h or m.startswith(f"{h}.") for h in HEAVY_FOR_COUNT)]
    assert heavy == []
    out, imported = imported_by("--db", db_url, "count", "-d", "drawn", "-s", "train", "-l", "1")
    assert out == "3\n"
    assert not [m for m in imported if m.split(".")[0] in ("numpy", "PIL", "alembic")]


def test_light_copies_match_the_library() -> None:
    assert DB_ENV == engine.DB_ENV
    assert tuple(WRITERS) == export_command.OUTPUTS
    assert export_command.LAYOUTS == LAYOUTS
    assert export_command.FORMATS == FORMATS
    assert export_command.LISTS == LISTS


def test_lazy_package_attributes() -> None:
    from catalog.api.handle import Catalog
    from catalog.api.selection import CatalogSelection

    assert (catalog.Catalog, catalog.CatalogSelection) == (Catalog, CatalogSelection)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = catalog.Nothing


@pytest.mark.parametrize("name", sorted(SELECTING))
def test_every_selecting_command_offers_the_selection_options(name: str) -> None:
    command = COMMAND.commands[name]  # type: ignore[attr-defined]
    options = {param.name: param for param in command.params}
    for option in SELECTION_OPTIONS:
        if option.name in SELECTING[name]:
            assert option.name not in options
        else:
            assert (options[option.name].help or "").strip(), f"{name} --{option.name}"


def test_commands_keep_their_own_defaults() -> None:
    sheet = {p.name: p for p in COMMAND.commands["sheet"].params}  # type: ignore[attr-defined]
    query = {p.name: p for p in COMMAND.commands["query"].params}  # type: ignore[attr-defined]
    assert (sheet["limit"].default, query["limit"].default) == (200, None)


def test_the_options_build_the_selection() -> None:
    seen: list[Selection] = []
    probe = typer.Typer()

    @probe.command()
    @with_selection(omit=("offset",), defaults={"seed": 7})
    def pick(
        selection: Selection,
        extra: Annotated[str, typer.Option("--extra", help="A command's own option.")] = "",
    ) -> None:
        """Record the selection."""
        seen.append(selection)
        typer.echo(extra)

    args = ["-d", "d", "-s", "train", "-s", "test", "-l", "3,5", "-l", "7", "--index", "2:"]
    result = CliRunner().invoke(probe, [*args, "--sample", "4", "--limit", "2", "--extra", "x"])
    assert (result.exit_code, result.stdout) == (0, "x\n")
    assert seen == [
        Selection(
            dataset="d", splits=("train", "test"), labels=("3", "5", "7"),
            index_range=(2, sys.maxsize), sample=4, seed=7, limit=2,
        )
    ]  # fmt: skip
    result = CliRunner().invoke(probe, ["--offset", "1"])
    assert result.exit_code == 2
    assert "No such option: --offset" in result.stderr


def test_with_selection_rejects_unknown_names() -> None:
    with pytest.raises(TypeError, match="no selection option named tags"):
        with_selection(omit=("tags",))
