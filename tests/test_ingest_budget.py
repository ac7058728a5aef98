"""Issue 24, phase 2: the read budget travels through ingest and the command line, an
ingest of no images is an error before anything is written, and the command line's
last guard turns anything unexpected into one line (``--debug`` shows the traceback)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import hostile as h
import numpy as np
import pytest
from builders import random_digits
from family_builders import emnist_members, mapping_text, write_emnist_zip
from sqlalchemy import func, select
from typer.testing import CliRunner

from catalog import Catalog
from catalog.api.handle import Catalog as CatalogClass
from catalog.budget import ReadBudget, option
from catalog.cli import app
from catalog.db.engine import session_scope
from catalog.db.models.images import Dataset
from catalog.errors import EmptySourceError, OverBudgetError
from catalog.ingest.transaction import decode_source
from catalog.sources import Batch, Decoded

TINY = Path(__file__).parent / "data" / "tiny"
ROOT = Path(__file__).resolve().parents[1]
MORE_IMAGES = "more than the 2 images the read budget allows (--max-images raises it)"


def _datasets(catalog: Catalog) -> int:
    with session_scope(catalog.engine) as session:
        return int(session.scalar(select(func.count()).select_from(Dataset)) or 0)


# 1. The budget through ingest ------------------------------------------------------------


def test_the_budget_reaches_the_reader_through_catalog_ingest(catalog: Catalog) -> None:
    with pytest.raises(OverBudgetError, match=re.escape(MORE_IMAGES)):
        catalog.ingest(TINY, dataset="tiny", budget=ReadBudget(max_images=2))
    assert _datasets(catalog) == 0
    result = catalog.ingest(TINY, dataset="tiny", budget=ReadBudget(max_images=5))
    assert result.counts == {"test": 2, "train": 3}


def test_the_budget_reaches_an_emnist_subset(tmp_path: Path, catalog: Catalog) -> None:
    x, y = random_digits(6, seed=3)
    members = emnist_members("digits", {"train": (x[:4], y[:4]), "test": (x[4:], y[4:])})
    names = {n: [48 + n] for n in range(10)}
    source = write_emnist_zip(tmp_path / "gzip.zip", {"digits": (members, mapping_text(names))})
    with pytest.raises(OverBudgetError, match=r"--max-images raises it"):
        decode_source(source, "digits", ReadBudget(max_images=3))
    with pytest.raises(OverBudgetError, match=r"--max-images raises it"):
        catalog.ingest(source, subset="digits", budget=ReadBudget(max_images=3))
    assert catalog.ingest(source, subset="digits").total == 6


# 2. --max-... options ----------------------------------------------------------------------


def test_ingest_has_one_option_per_field_of_the_budget() -> None:
    result = CliRunner().invoke(app, ["ingest", "--help"])
    assert result.exit_code == 0
    for limit in fields(ReadBudget):
        assert re.search(rf"{option(limit.name)} (N|SIZE) +Read budget: ", result.output), limit
    assert "[default: (64M)]" in result.output


def test_raising_max_ratio_turns_a_bomb_refusal_into_the_next_limits(tmp_path: Path) -> None:
    """One 33,000 x 33,000 image in an npz: refused as a bomb; with the ratio raised,
    by its side."""
    source = h.npz_huge_image(tmp_path)
    db = str(tmp_path / "catalog.db")
    runner = CliRunner()
    steps = [
        ([], "(--max-ratio raises it)"),
        (["--max-ratio", "100000"], ("claims images of 33000x33000: more than the 1,024 pixels "
                                     "a side the read budget allows (--max-side raises it)")),
    ]  # fmt: skip
    for raised, refusal in steps:
        result = runner.invoke(app, ["--db", db, "ingest", str(source), *raised])
        assert result.exit_code == 1, result.output
        assert re.fullmatch(r"Error: [^\n]+\n", result.stderr), result.stderr
        assert refusal in result.stderr, (raised, result.stderr)


def test_a_size_option_takes_units(tmp_path: Path) -> None:
    x, y = random_digits(3, seed=1)
    source = tmp_path / "mnist.npz"
    np.savez(source, x_train=x, y_train=y, x_test=x, y_test=y)
    db = str(tmp_path / "catalog.db")
    result = CliRunner().invoke(app, ["--db", db, "ingest", str(source), "--max-block-bytes", "1K"])
    assert result.exit_code == 0, result.output
    assert "Ingested 6 images" in result.stdout


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--max-ratio", "0"], "Invalid value for '--max-ratio'"),
        (["--max-images", "-5"], "Invalid value for '--max-images'"),
        (["--max-side", "wide"], "Invalid value for '--max-side'"),
        (["--max-block-bytes", "12Q"], "Invalid memory size '12Q'"),
        (["--max-line-bytes", "0"], "Invalid value for '--max-line-bytes'"),
    ],
)
def test_a_bad_budget_value_is_a_usage_error(tmp_path: Path, given: list[str], said: str) -> None:
    db = str(tmp_path / "catalog.db")
    result = CliRunner().invoke(app, ["--db", db, "ingest", str(TINY), *given])
    assert result.exit_code == 2, result.output
    assert said in result.stderr
    assert not Path(db).exists()  # refused before the catalog was opened


# 3. An ingest of no images -----------------------------------------------------------------


def _batches(n: int) -> Decoded:
    """A source that says it holds 3 images and yields ``n`` (0 or 3)."""
    x, y = random_digits(3, seed=2)
    batch = Batch("train", np.arange(3, dtype=np.int64), y.astype(np.int64), x)
    return Decoded("npz", {"train": 3}, iter([batch] if n else []))


def test_an_ingest_of_no_images_is_an_error_before_any_row(catalog: Catalog) -> None:
    said = "No images in made-by-hand: expected at least one image in one split"
    nothing = Decoded("npz", {}, iter(()))
    with pytest.raises(EmptySourceError, match=re.escape(said)):
        catalog.ingest(Path("made-by-hand"), dataset="empty", decoded=nothing)
    # Counts that promise images the batches do not hold: refused, rolled back.
    with pytest.raises(EmptySourceError, match=re.escape(said)):
        catalog.ingest(Path("made-by-hand"), dataset="empty", decoded=_batches(0))
    assert _datasets(catalog) == 0
    assert catalog.ingest(Path("made-by-hand"), dataset="three", decoded=_batches(3)).total == 3


# 5. The last guard ---------------------------------------------------------------------------


def _raise(error: BaseException) -> object:
    def raising(*_args: object, **_kwargs: object) -> object:
        raise error

    return raising


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (MemoryError("Unable to allocate 960. GiB for an array with shape (60, 2147483648)"),
         ("Error: unexpected MemoryError: Unable to allocate 960. GiB for an array with shape "
          "(60, 2147483648) (run with --debug to see the traceback)\n")),
        (MemoryError(), "Error: unexpected MemoryError (run with --debug to see the traceback)\n"),
        (RuntimeError("two\nlines"),
         "Error: unexpected RuntimeError: two (run with --debug to see the traceback)\n"),
    ],
)  # fmt: skip
def test_an_unexpected_error_is_one_line_pointing_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, line: str
) -> None:
    monkeypatch.setattr(CatalogClass, "datasets", _raise(error))
    monkeypatch.setattr(CatalogClass, "check", _raise(error))
    db = str(tmp_path / "catalog.db")
    for command in (["datasets"], ["db", "check"]):  # a command, and one of a group
        result = CliRunner().invoke(app, ["--db", db, *command])
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr == line
    result = CliRunner().invoke(app, ["--db", db, "--debug", "datasets"])
    assert result.exception is error  # not caught: Python prints its traceback


#: Runs the command line with ``Catalog.datasets`` raising MemoryError, in a fresh process.
GUARD_PROBE = """
import sys
from catalog.api.handle import Catalog
from catalog.cli import app

def datasets(self, **kwargs):
    raise MemoryError("Unable to allocate 8.00 GiB")

Catalog.datasets = datasets
app(sys.argv[1:], prog_name="mnist-catalog")
"""


def test_debug_shows_the_traceback_in_a_process(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    db = str(tmp_path / "catalog.db")
    runs = {
        debug: subprocess.run(
            [sys.executable, "-c", GUARD_PROBE, "--db", db, *debug, "datasets"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        for debug in ((), ("--debug",))
    }
    plain, shown = runs[()], runs[("--debug",)]
    assert plain.returncode == 1
    assert plain.stderr == (
        "Error: unexpected MemoryError: Unable to allocate 8.00 GiB "
        "(run with --debug to see the traceback)\n"
    )
    assert shown.returncode == 1
    assert shown.stderr.startswith("Traceback (most recent call last):")
    assert shown.stderr.endswith("MemoryError: Unable to allocate 8.00 GiB\n")


def test_exits_usage_errors_and_interrupts_keep_their_behaviour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "catalog.db")
    runner = CliRunner()
    usage = runner.invoke(app, ["--db", db, "datasets", "--no-such-option"])
    assert usage.exit_code == 2
    assert "No such option: --no-such-option" in usage.stderr
    missing = runner.invoke(app, ["--db", db, "show", "test:0"])  # a CatalogError
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: ")
    assert "unexpected" not in missing.stderr
    monkeypatch.setattr(CatalogClass, "datasets", _raise(KeyboardInterrupt()))
    interrupted = runner.invoke(app, ["--db", db, "datasets"])
    assert interrupted.exit_code == 130
    assert interrupted.stderr == "Interrupted: the catalog keeps what was committed before.\n"
