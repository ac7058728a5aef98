"""Names and paths: what datasets and splits may be called, and where an export writes.

Dataset names come from the user (``--dataset``) and split names from the source
(folder names, IDX file-name prefixes); both become parts of file paths when a
selection is exported. Anything but a plain name is refused with an error that
names it, before anything is written, and an export never writes outside its
folder, whatever links that folder holds.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair, write_image_folder
from PIL import Image
from sqlalchemy import update
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.db.engine import session_scope
from catalog.db.models.images import Dataset
from catalog.errors import ExportConflictError, ExportError, InvalidNameError, SourceFormatError
from catalog.ingest.transaction import decode_source
from catalog.sources import check_split_name

TINY = Path(__file__).parent / "data" / "tiny"
runner = CliRunner()

HOSTILE_DATASET_NAMES = [
    "../x", "a/b", "..", ".", "/etc", "a\\b", "a..b", ".hidden", "-rf", "",
    "has space", "tab\tname", "nul\x00byte", "newline\n", "caf\u00e9", "x" * 65,
]  # fmt: skip
HOSTILE_SPLIT_NAMES = [
    "../../etc", "..", "a/b", "", "Train", "tr ain", "train\n", "9lives", "-x", "_x",
    "tr.ain", "caf\u00e9", "nul\x00", "x" * 33,
]  # fmt: skip
#: Of those, the ones a folder can be called.
FOLDER_SPLIT_NAMES = ["Train", "tr ain", "train\n", "9lives", "-x", "_x", "tr.ain", "caf\u00e9"]

SPLITS = {"train": random_digits(6, seed=3), "test": random_digits(4, seed=4)}


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A SQLite catalog in ``tmp_path`` holding the tiny dataset (5 images)."""
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        catalog.ingest(TINY, dataset="tiny")
        yield catalog


def entries(folder: Path) -> set[str]:
    """Names in ``folder``, the catalog's own files left out."""
    return {p.name for p in folder.iterdir() if not p.name.startswith("catalog.db")}


def test_hostile_dataset_names_are_refused_at_ingest(catalog: Catalog) -> None:
    """Traversal (``../x``, ``a/b``, ``..``), odd characters (space, tab, NUL, a
    trailing newline, non-ASCII) and 65 characters: each is refused, quoted in the
    error, and nothing is written."""
    for name in HOSTILE_DATASET_NAMES:
        with pytest.raises(InvalidNameError, match=re.escape(f"Invalid dataset name {name!r}:")):
            catalog.ingest(TINY, dataset=name)
    assert catalog.datasets() == []
    assert catalog.ingest(TINY, dataset="a" * 64).total == 5  # the longest allowed


@pytest.mark.parametrize("name", ["../x", "a/b", "nul\x00byte", "newline\n"])
def test_hostile_dataset_name_is_a_one_line_cli_error(tmp_path: Path, name: str) -> None:
    """``mnist-catalog ingest --dataset NAME``: exit 1, one ``Error:`` line, no traceback."""
    result = runner.invoke(
        app, ["--db", str(tmp_path / "c.db"), "ingest", str(TINY), "--dataset", name]
    )
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: Invalid dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit\n"
    )


def test_default_dataset_name_from_an_odd_folder_is_safe(tmp_path: Path) -> None:
    """Without ``--dataset`` the name comes from the source's folder, made safe."""
    source = tmp_path / "My Data (v2) ..!"
    shutil.copytree(TINY, source)
    with Catalog.open(tmp_path / "c.db") as catalog:
        assert catalog.ingest(source).dataset == "my-data-v2"


@pytest.mark.parametrize("name", HOSTILE_SPLIT_NAMES)
def test_split_names_with_traversal_or_odd_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidNameError, match=re.escape(f"Invalid split name {name!r} in src:")):
        check_split_name(name, "src")


@pytest.mark.parametrize("name", FOLDER_SPLIT_NAMES)
def test_image_folder_with_an_odd_split_name_is_refused_naming_it(
    tmp_path: Path, name: str
) -> None:
    root = write_image_folder(tmp_path / "root", {name: SPLITS["train"], "test": SPLITS["test"]})
    with pytest.raises(InvalidNameError, match=re.escape(f"Invalid split name {name!r} in {root}")):
        decode_source(root)


def test_image_folder_split_is_one_line_cli_error_and_nothing_is_ingested(
    tmp_path: Path,
) -> None:
    root = write_image_folder(tmp_path / "root", {"Train": SPLITS["train"]})
    result = runner.invoke(app, ["--db", str(tmp_path / "c.db"), "ingest", str(root)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Invalid split name 'Train' in {root}: expected lower-case letters, "
        "digits, '_' or '-', starting with a letter\n"
    )
    with Catalog.open(tmp_path / "c.db") as catalog:
        assert catalog.datasets() == []


def test_image_folder_split_linked_outside_is_refused(tmp_path: Path) -> None:
    """A split folder that is a symlink to ``../../etc``-like places outside ROOT."""
    root = write_image_folder(tmp_path / "root", {"train": SPLITS["train"]})
    elsewhere = write_image_folder(tmp_path / "elsewhere", {"test": SPLITS["test"]})
    (root / "test").symlink_to(Path("..") / "elsewhere" / "test")
    with pytest.raises(SourceFormatError, match=re.escape(f"{elsewhere / 'test'}, outside")):
        decode_source(root)


@pytest.mark.parametrize("prefix", ["9x", "x" * 33])
def test_idx_file_prefix_that_is_no_split_name_is_refused(tmp_path: Path, prefix: str) -> None:
    pixels, labels = SPLITS["train"]
    images, _ = write_idx_pair(tmp_path / "src", prefix, pixels, labels)
    with pytest.raises(
        InvalidNameError, match=re.escape(f"Invalid split name {prefix!r} in {images}")
    ):
        decode_source(tmp_path / "src")


def test_flat_layout_writes_only_into_the_export_folder(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """Flat names are ``<dataset>_<split>_<index>_<label>``, from validated names only."""
    sqlite_catalog.ingest(TINY, dataset="b.c_d-2")
    out = tmp_path / "out"
    sqlite_catalog.select(dataset="b.c_d-2").export(out, layout="flat", jobs=1)
    sqlite_catalog.select(dataset="tiny").export(out, layout="flat", jobs=1)
    rows = sqlite_catalog.select(dataset="tiny").rows()
    names = {
        f"{dataset}_{row.split}_{row.index:06d}_{row.label}.png"
        for dataset in ("tiny", "b.c_d-2")
        for row in rows
    }
    assert entries(out) == names | {"manifest.csv"}
    assert entries(tmp_path) == {"out"}


@pytest.mark.parametrize("stored", ["../evil", "../new/evil", "/tmp/evil", "sub/../../evil"])
def test_export_refuses_a_stored_dataset_name_that_leaves_the_folder(
    sqlite_catalog: Catalog, tmp_path: Path, stored: str
) -> None:
    """Defence in depth: a name that ingest would refuse, put into the catalog by hand
    (an old or edited catalog), makes a flat export fail before it creates anything."""
    with session_scope(sqlite_catalog.engine) as session:
        session.execute(update(Dataset).values(name=stored))
    (tmp_path / "out").mkdir()
    in_tmp = set(Path("/tmp").glob("evil*"))
    with pytest.raises(ExportError, match="outside"):
        sqlite_catalog.select().export(tmp_path / "out", layout="flat", jobs=1)
    assert entries(tmp_path) == {"out"}
    assert entries(tmp_path / "out") == set()
    assert set(Path("/tmp").glob("evil*")) == in_tmp


def test_export_refuses_a_label_folder_linked_outside(tmp_path: Path) -> None:
    """by-label: ``OUT/test`` is a symlink to a folder outside OUT. The CLI exits 1
    with one line, and nothing (not even a label folder) appears outside."""
    catalog_file = tmp_path / "c.db"
    with Catalog.open(catalog_file) as catalog:
        catalog.ingest(TINY, dataset="tiny")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "test").symlink_to(elsewhere)
    result = runner.invoke(
        app, ["--db", str(catalog_file), "export", str(out), "--layout", "by-label", "-j", "1"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Refusing to write to {out / 'test'}/")
    assert result.stderr.endswith(f"outside {out}\n")
    assert result.stderr.count("\n") == 1
    assert list(elsewhere.iterdir()) == []


def test_a_file_linked_outside_is_never_written_through(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """A symlink at an image's final name, pointing outside: the export reports a
    conflict; ``overwrite`` replaces the link itself, and the outside file is untouched."""
    out = tmp_path / "out"
    sqlite_catalog.select(split="test").export(out, jobs=1)
    victim = min((out / "test").iterdir())
    _, pixels = sqlite_catalog.image("test", 0)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"do not touch")
    victim.unlink()
    victim.symlink_to(secret)
    with pytest.raises(ExportConflictError, match=re.escape(f"{victim} already exists")):
        sqlite_catalog.select(split="test").export(out, jobs=1)
    sqlite_catalog.select(split="test").export(out, jobs=1, overwrite=True)
    assert secret.read_bytes() == b"do not touch"
    assert not victim.is_symlink()
    with Image.open(victim) as image:
        assert np.array_equal(np.asarray(image), pixels)
