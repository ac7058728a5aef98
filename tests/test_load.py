"""A short run of ``benchmarks/load.py``: clients sharing one catalog lose nothing.

Four clients for eight seconds (the benchmark's default is eight for sixty) on
each backend, a mix of query, count, ``.arrays()``, small exports and relabels;
zero errors, every export on record with exactly its files, no export on record
that no client made, every client's decisions in the log. The figures are the
benchmark's business, not asserted here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "load.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_benchmark", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look classes up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_four_clients_lose_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        request.getfixturevalue("pg_admin")  # skips when PostgreSQL is not reachable
    load = load_module()
    report = load.run_load(backend, clients=4, seconds=8, workdir=tmp_path)
    assert report.errors == []
    assert report.lost == []
    assert set(report.per_op) == set(load.MIX)  # every kind of operation ran
    assert report.exports >= 1
    assert report.ops >= 20
