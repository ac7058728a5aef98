"""A PostgreSQL role that may only SELECT: reading works, writing says why in one line.

The role gets USAGE on the test's schema and SELECT on its tables, and
``default_transaction_read_only``, so that anything opening tries to write
(a migration, a lock row, a record) would fail the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.errors import CatalogReadOnlyError

TINY = Path(__file__).parent / "data" / "tiny"
runner = CliRunner()


@pytest.fixture
def reader_url(backend: str, db_url: str, pg_admin: Engine) -> Iterator[tuple[str, str]]:
    """(url of the owner, url of a SELECT-only role) for a catalog holding ``tiny``."""
    if backend != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    with Catalog.open(db_url) as catalog:
        catalog.ingest(TINY, dataset="tiny")
    schema = schema_of(db_url)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"ALTER ROLE {role} SET default_transaction_read_only = on"))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}'))
    url = make_url(db_url).set(username=role).render_as_string(hide_password=False)
    try:
        yield db_url, url
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}'))
            conn.execute(text(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}'))
            conn.execute(text(f"DROP ROLE {role}"))


def schema_of(url: str) -> str:
    """The schema conftest put in the URL's ``options=-csearch_path=SCHEMA``."""
    return str(make_url(url).query["options"]).partition("=")[2]


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_select_only_role_reads(reader_url: tuple[str, str], tmp_path: Path) -> None:
    _, url = reader_url
    assert run(url, "count") == (0, "5\n", "")
    code, out, err = run(url, "datasets")
    assert (code, err) == (0, "")
    assert "tiny" in out
    code, out, err = run(url, "query", "--format", "ids")
    assert (code, len(out.split()), err) == (0, 5, "")
    code, out, err = run(url, "show", "test:0")
    assert (code, err) == (0, "")
    assert run(url, "sheet", "-o", str(tmp_path / "s.png"))[0] == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    code, out, err = run(url, "audit", "--no-store")
    assert code in (0, 1)  # 1 when the audit finds problems in the tiny dataset
    assert "Traceback" not in err
    assert "tiny" in out
    with Catalog.open(url) as catalog:
        assert not catalog.writable
        pixels, labels = catalog.select(split="train").arrays()
        assert (pixels.shape, labels.tolist()) == ((3, 28, 28), [1, 7, 4])


def test_a_select_only_role_is_refused_writes_in_one_line(
    reader_url: tuple[str, str], tmp_path: Path
) -> None:
    owner, url = reader_url
    role = make_url(url).username
    refusal = f"is read-only for role {role}: it may not write table datasets"
    code, out, err = run(url, "ingest", str(TINY), "--dataset", "other")
    assert (code, out) == (1, "")
    assert err.startswith("Error: The catalog ")
    assert err.endswith(f"{refusal}\n")
    assert err.count("\n") == 1
    code, out, err = run(url, "export", str(tmp_path / "out"))
    assert (code, out) == (1, "")
    assert err.endswith(f"{refusal}\n")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before anything was made
    code, out, err = run(url, "audit")  # stores the run by default
    assert err.endswith(f"{refusal}\n")
    assert err.count("\n") == 1
    assert code == 1
    code, out, err = run(url, "relabel", "train:0", "3")
    assert (code, out) == (1, "")
    assert err.endswith(f"{refusal}\n")
    with Catalog.open(url) as catalog, pytest.raises(CatalogReadOnlyError, match=refusal):
        catalog.ingest(TINY, dataset="other")
    with Catalog.open(owner) as catalog:
        assert [d.name for d in catalog.datasets()] == ["tiny"]
        assert catalog.exports() == []


def test_a_select_only_role_on_an_empty_schema_cannot_create_it(
    backend: str, db_url: str, pg_admin: Engine
) -> None:
    """Opening an empty catalog would create its tables; a role that may not says so."""
    if backend != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    schema = schema_of(db_url)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
    url = make_url(db_url).set(username=role).render_as_string(hide_password=False)
    try:
        code, out, err = run(url, "datasets")
        assert (code, out) == (1, "")
        assert err.startswith("Error: The catalog ")
        assert f"is read-only for role {role}: permission denied for schema" in err
        assert err.count("\n") == 1
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}'))
            conn.execute(text(f"DROP ROLE {role}"))
