"""Per-image metadata in the manifests of container exports, with datasets that
have none beside it, and without any: the export asks once whether the catalog
holds metadata at all."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from builders import random_digits, write_idx_pair
from family_builders import write_qmnist
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.facts.metadata import any_metadata

X, Y = random_digits(30, seed=7)


def run(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


def manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_metadata_of_one_dataset_only_in_its_rows(db_url: str, tmp_path: Path) -> None:
    table = np.zeros((30, 8), dtype=np.int32)
    table[:, 0] = Y
    table[:, 2] = 4000 + np.arange(30) % 3  # writers
    write_idx_pair(tmp_path / "plain", "train", X, Y)
    write_qmnist(tmp_path / "q", "train", X, table)
    write_idx_pair(tmp_path / "after", "train", X[:5], Y[:5])
    code, _, err = run(db_url, "ingest", str(tmp_path / "plain"), "-d", "plain")
    assert code == 0, err
    with Catalog.open(db_url) as catalog, Session(catalog.engine) as session:
        assert not any_metadata(session)
    out = tmp_path / "alone"
    assert run(db_url, "export", str(out), "-d", "plain", "--as", "idx")[0] == 0
    assert {row["metadata"] for row in manifest(out)} == {""}
    for name in ("q", "after"):
        code, _, err = run(db_url, "ingest", str(tmp_path / name), "-d", name)
        assert code == 0, err
    with Catalog.open(db_url) as catalog, Session(catalog.engine) as session:
        assert any_metadata(session)

    for name, writers in (("q", True), ("plain", False), ("after", False)):
        for output in ("idx", "webdataset"):
            out = tmp_path / f"{name}-{output}"
            code, _, err = run(db_url, "export", str(out), "-d", name, "--as", output)
            assert code == 0, err
            rows = manifest(out)
            assert len(rows) == (5 if name == "after" else 30)
            if writers:
                found = [row["metadata"].split("writer=")[1].split(";")[0] for row in rows]
                assert found == [str(4000 + i % 3) for i in range(30)]
            else:
                assert {row["metadata"] for row in rows} == {""}
            assert [row["label"] for row in rows] == [str(y) for y in Y[: len(rows)]]
