"""Fixtures: catalogs on SQLite files and PostgreSQL schemas, tiny and real data.

Every test that takes ``db_url`` (or a fixture built on it) runs once per
backend: SQLite in a temporary file, and PostgreSQL in a schema of its own that
the fixture creates and drops. PostgreSQL is reached at
``$MNIST_CATALOG_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
when it is unreachable those tests skip, unless ``MNIST_CATALOG_REQUIRE_PG=1``
(as in CI), when they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from builders import random_digits
from old_recipe import Arrays, letter, write_old_recipe_folder
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from catalog import Catalog

HERE = Path(__file__).resolve().parent
TINY = HERE / "data" / "tiny"
#: The real MNIST files, beside the checkout (``shared/data/mnist``), or where
#: ``$MNIST_CATALOG_TEST_MNIST`` says (a worktree is not beside them).
MNIST_DIR = Path(
    os.environ.get("MNIST_CATALOG_TEST_MNIST") or HERE.parents[1] / "shared" / "data" / "mnist"
)
PG_URL = os.environ.get(
    "MNIST_CATALOG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]

_pg_status: str | None = None


def pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    global _pg_status
    if _pg_status is None:
        try:
            engine = create_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_status = ""
        except (OSError, SQLAlchemyError) as exc:
            _pg_status = f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}"
    return _pg_status or None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="Run database tests on this backend only (repeatable; default both).",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("backend") or BACKENDS
        metafunc.parametrize("backend", chosen, scope="session")


def _skip_without_pg() -> None:
    reason = pg_available()
    if reason:
        if os.environ.get("MNIST_CATALOG_REQUIRE_PG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[object]:
    _skip_without_pg()
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _pg_schema_url(admin: object) -> tuple[str, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def _drop_pg_schema(admin: object, schema: str) -> None:
    with admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty catalog location on ``backend``."""
    with _location(backend, tmp_path / "catalog.db", request) as url:
        yield url


@contextmanager
def _location(backend: str, sqlite_file: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A catalog URL on ``backend``: ``sqlite_file``, or a PostgreSQL schema of its own
    that is dropped afterwards."""
    if backend == "sqlite":
        yield str(sqlite_file)
        return
    admin = request.getfixturevalue("pg_admin")
    schema, url = _pg_schema_url(admin)
    try:
        yield url
    finally:
        _drop_pg_schema(admin, schema)


@pytest.fixture
def catalog(db_url: str) -> Iterator[Catalog]:
    """An open, migrated, empty catalog."""
    with Catalog.open(db_url) as opened:
        yield opened


@pytest.fixture
def tiny_catalog(catalog: Catalog) -> Catalog:
    """The checked-in 3+2 image IDX dataset, ingested as ``tiny``."""
    catalog.ingest(TINY, dataset="tiny")
    return catalog


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_url(
    backend: str, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[str]:  # fmt: skip
    """A catalog holding the real MNIST as ``mnist``, shared by the tests that only read it."""
    with _location(backend, tmp_path_factory.mktemp("mnist") / "mnist.db", request) as url:
        with Catalog.open(url) as opened:
            opened.ingest(mnist_dir, dataset="mnist")
        yield url


@pytest.fixture
def mnist_catalog(mnist_url: str) -> Iterator[Catalog]:
    with Catalog.open(mnist_url) as opened:
        yield opened


@pytest.fixture(scope="session")
def mnist_arrays(mnist_dir: Path) -> Arrays:
    """The real MNIST as arrays by split."""
    from catalog.sources.idx import read_idx

    parts: dict[str, list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]] = {}
    for batch in read_idx(mnist_dir).batches:
        parts.setdefault(batch.split, []).append((batch.pixels, batch.labels))
    return {
        split: (np.concatenate([p for p, _ in v]), np.concatenate([y for _, y in v]))
        for split, v in parts.items()
    }


@pytest.fixture(scope="session")
def old_recipe(mnist_arrays: Arrays, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 digits written the old recipe's way; train 8 (a 1) says 7, and two foreign
    images (test 298 a letter, test 299 random strokes)."""
    (x, y), (xt, yt) = mnist_arrays["train"], mnist_arrays["test"]
    train_y = y[:1400].copy()
    assert train_y[8] == 1
    train_y[8] = 7  # a planted relabel
    strokes, _ = random_digits(1, seed=5)
    test_x = np.concatenate([xt[:298], letter("A")[None], strokes])
    test_y = np.concatenate([yt[:298], [4, 1]])
    root = tmp_path_factory.mktemp("old") / "mnist"
    return write_old_recipe_folder(root, {
        "train": (x[:1400], train_y), "val": (x[50_000:50_300], y[50_000:50_300]),
        "test": (test_x, test_y),
    })  # fmt: skip


# The web view's tests share one small audited catalog (tests/web_fixtures.py); the
# audit runs once per session, each test's catalog records its report.


@pytest.fixture(scope="session")
def web_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from web_fixtures import audit_sources, write_sources

    folder = write_sources(tmp_path_factory.mktemp("web") / "src")
    return folder, audit_sources(folder)


@pytest.fixture
def web_catalog(catalog: Catalog, web_sources: tuple[Path, object]) -> Catalog:
    from web_fixtures import build_web_catalog

    folder, report = web_sources
    return build_web_catalog(catalog, folder, report)  # type: ignore[arg-type]


@pytest.fixture
def access() -> object:
    from catalog.web.security import Access

    return Access()


@pytest.fixture
def client(web_catalog: Catalog, access: object) -> Iterator[object]:
    """A Starlette test client on the web view of ``web_catalog`` (host ``testserver``)."""
    from starlette.testclient import TestClient

    from catalog.web.app import create_app

    app = create_app(web_catalog, access=access, hosts=("testserver",))  # type: ignore[arg-type]
    with TestClient(app) as opened:
        yield opened
