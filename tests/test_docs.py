"""The README documents every command, and every command has help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from catalog.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
COMMAND = get_command(app)
NAMES = sorted(COMMAND.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES)
def test_every_command_has_help(name: str) -> None:
    command = COMMAND.commands[name]  # type: ignore[attr-defined]
    assert (command.help or "").strip(), f"{name} has no help"


@pytest.mark.parametrize("name", NAMES)
def test_every_command_is_in_the_readme(name: str) -> None:
    assert re.search(rf"mnist-catalog (--db \S+ )?{re.escape(name)}\b", README), name


def test_readme_starts_with_the_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert "pip install" in blocks[0]
    assert "mnist-catalog ingest" in blocks[0]
    assert "pytest" in blocks[1]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert blocks[1].strip() in ci


ROBUSTNESS = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text(
    encoding="utf-8"
)


def test_the_readme_is_short_and_links_its_docs() -> None:
    assert len(README.splitlines()) <= 450
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (Path(__file__).resolve().parents[1] / link).is_file(), link


def test_every_test_the_survival_table_cites_exists() -> None:
    section = ROBUSTNESS
    cited = re.findall(r"`(test_\w+\.py)::(test_\w+)", section)
    assert len(cited) >= 20
    tests = Path(__file__).resolve().parent
    for filename, name in cited:
        source = (tests / filename).read_text(encoding="utf-8")
        assert f"def {name}(" in source, f"{filename}::{name}"
    for case in re.findall(r"`(?:test_bad_inputs\.py::)?…\[([^\]]+)\]`", section):
        bad_inputs = (tests / "test_bad_inputs.py").read_text(encoding="utf-8")
        if not case.endswith("…"):
            assert f'"{case}"' in bad_inputs or case.rstrip(" …") in bad_inputs, case
