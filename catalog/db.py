"""The catalog's tables, and how to open a catalog.

A catalog lives in SQLite (the default, one file) or PostgreSQL (shared by a
team), addressed by a path or a SQLAlchemy URL. Its schema is owned by the
Alembic migrations in ``migrations/``; :mod:`catalog.schema` decides what opening
a catalog at another revision does (upgrade, refuse, or read only).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.dml import UpdateBase

from catalog.dbtypes import UTCDateTime, detect_bytewise_collation
from catalog.errors import CatalogLocationError, CatalogReadOnlyError, MissingExtraError

#: Environment variable naming the catalog when ``--db`` is not given.
DB_ENV = "MNIST_CATALOG_DB"
DEFAULT_DB = "catalog.db"
#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: Engine execution option that marks a catalog this client may only read; its
#: value is the message that refuses a write (set by :mod:`catalog.schema`).
READ_ONLY_OPTION = "catalog_read_only"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Dataset(Base):
    """A named collection of images, split into train/test/... ."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: Where the label set's names came from: "digits", "fashion-mnist", ...
    label_set: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    sources: Mapped[list[Source]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )


class Source(Base):
    """One file (or folder) that images of a dataset were decoded from."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    uri: Mapped[str] = mapped_column(Text)  # path or URL as given
    split: Mapped[str | None] = mapped_column(String(32))  # None when it holds several splits
    format: Mapped[str] = mapped_column(String(32))  # idx, pickle, npz, folder/classic, ...
    role: Mapped[str] = mapped_column(String(32), default="")  # "train images", ...
    size: Mapped[int] = mapped_column(BigInteger)  # bytes on disk
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # decoded content
    md5: Mapped[str] = mapped_column(String(32))  # decoded content
    file_md5: Mapped[str | None] = mapped_column(String(32))  # the bytes on disk (the .gz)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    genuine: Mapped[str | None] = mapped_column(String(96))  # "mnist/train-images-idx3-ubyte.gz"
    note: Mapped[str | None] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="sources")


class Image(Base):
    """One decoded image: its place in the dataset, its label and its pixels."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("dataset_id", "split", "idx", name="uq_images_dataset_split_idx"),
        # With idx last, one label of one split is read in index order, no sort.
        Index("ix_images_dataset_split_label_idx", "dataset_id", "split", "label", "idx"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(32))
    index: Mapped[int] = mapped_column("idx", Integer)  # position in its split, source order
    label: Mapped[int | None] = mapped_column(SmallInteger)  # None: published without one
    height: Mapped[int] = mapped_column(SmallInteger)
    width: Mapped[int] = mapped_column(SmallInteger)
    pixels: Mapped[bytes] = mapped_column(LargeBinary)  # uint8, row-major
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of ``pixels``


class Export(Base):
    """One run of ``export``: where, what selection, which layout and format."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    root: Mapped[str] = mapped_column(Text)  # absolute path of the export folder
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Output format: folder, idx, npz, parquet, webdataset (catalog.export.formats).
    output: Mapped[str] = mapped_column(String(16), default="folder", server_default="folder")
    layout: Mapped[str] = mapped_column(String(16))  # folder exports; "" for the others
    format: Mapped[str] = mapped_column(String(8))  # how images are encoded: png, ..., raw
    count: Mapped[int] = mapped_column(Integer, default=0)  # images in the export
    written: Mapped[int] = mapped_column(Integer, default=0)  # images this run wrote
    # The latest curation decision when the export ran (None: there were none).
    decision_id: Mapped[int | None] = mapped_column(Integer)


class ExportedFile(Base):
    """A file on disk written from an image; one row per path, the latest write.

    A container file (an IDX file, a shard ...) holds many images; its row names
    the first, and the export's ``manifest.csv`` lists the rest."""

    __tablename__ = "exported_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # absolute
    format: Mapped[str] = mapped_column(String(8))  # png, ...; idx, npz, parquet, tar
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # of the file bytes
    written_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def bulk_executor(
    connection: Connection, statement: UpdateBase, columns: Sequence[str]
) -> Callable[[list[tuple[Any, ...]]], None]:
    """Return a function that runs ``statement`` for rows of ``columns`` values,
    as one driver-level executemany.

    The statement is compiled once by SQLAlchemy Core for the connection's
    dialect; rows go to the driver as tuples (or dicts, for named paramstyles),
    skipping the per-row parameter processing that costs more than SQLite's
    insert itself. Values must already be what the driver takes (str, int,
    bytes, datetime).
    """
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(columns))
    sql = str(compiled)
    positional = compiled.positiontup
    if positional is not None:
        order = [list(columns).index(name) for name in positional]
        identity = order == list(range(len(columns)))

        def run_positional(rows: list[tuple[Any, ...]]) -> None:
            params = rows if identity else [tuple(row[i] for i in order) for row in rows]
            connection.exec_driver_sql(sql, params)

        return run_positional

    def run_named(rows: list[tuple[Any, ...]]) -> None:
        connection.exec_driver_sql(sql, [dict(zip(columns, row, strict=True)) for row in rows])

    return run_named


def bulk_inserter(
    connection: Connection, table: Table, columns: Sequence[str]
) -> Callable[[list[tuple[Any, ...]]], None]:
    """:func:`bulk_executor` for a plain INSERT into ``table``."""
    return bulk_executor(connection, insert(table), columns)


def resolve_url(location: str | Path | None = None) -> URL:
    """Turn a path or SQLAlchemy URL (or ``$MNIST_CATALOG_DB``) into a URL.

    >>> resolve_url("postgresql+psycopg://db.example/team").drivername
    'postgresql+psycopg'
    >>> resolve_url("/tmp/mnist.db").database
    '/tmp/mnist.db'
    """
    if location is None:
        location = os.environ.get(DB_ENV) or DEFAULT_DB
    text = str(location)
    if "://" in text:
        try:
            return make_url(text)
        except ArgumentError as exc:
            msg = f"Invalid catalog URL {text!r}: {exc}"
            raise CatalogLocationError(msg) from None
    path = Path(text).expanduser()
    if path.is_dir():
        msg = f"Catalog path {path} is a folder; expected a file such as {path / DEFAULT_DB}"
        raise CatalogLocationError(msg)
    if not path.parent.exists():
        msg = f"Cannot create catalog {path}: folder {path.parent} does not exist"
        raise CatalogLocationError(msg)
    return URL.create("sqlite+pysqlite", database=str(path.resolve()))


def _enable_wal(cursor: Any) -> None:
    """Switch a new database to WAL (it persists in the file). Switching takes an
    exclusive lock that SQLite may refuse at once while another process opens the
    same new file, so a refusal is retried for up to the busy timeout."""
    import sqlite3
    import time

    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN issued by us (not by pysqlite)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself, so transactions (and DDL) are real.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that
        # upgrades to writing cannot wait on the busy timeout, and fails.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(location: str | Path | None = None) -> Engine:
    """Create an engine for a catalog path or URL, without migrating it."""
    url = resolve_url(location)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        driver = (exc.name or url.drivername).split(".")[0]
        extra = ' (pip install "mnist-catalog[postgres]")' if "postgres" in url.drivername else ""
        msg = (
            f"Cannot open catalog {url.render_as_string(hide_password=True)}: "
            f"its driver {driver} is not installed{extra}"
        )
        raise MissingExtraError(msg) from None
    if url.get_backend_name() == "postgresql":
        detect_bytewise_collation(engine)
    return engine


def check_writable(engine: Engine) -> None:
    """Raise :class:`CatalogReadOnlyError` when this client may only read the catalog
    (a role without INSERT, or a schema newer than this client; see :mod:`catalog.schema`)."""
    reason = engine.get_execution_options().get(READ_ONLY_OPTION)
    if reason:
        raise CatalogReadOnlyError(reason)


# Opening and migrating live in catalog.schema; these names stay here for callers.
def open_engine(location: str | Path | None = None) -> Engine:
    """Create an engine for the catalog, ready for this client (see :mod:`catalog.schema`)."""
    from catalog import schema

    return schema.open_engine(location)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalog's schema to ``revision`` under the migration lock."""
    from catalog import schema

    schema.upgrade(engine, revision)


def current_revision(engine: Engine) -> str | None:
    from catalog import schema

    return schema.current_revision(engine)


def head_revision(engine: Engine | None = None) -> str | None:
    from catalog import schema

    return schema.head_revision(engine)


def alembic_config(engine: Engine | None = None) -> Any:
    from catalog import schema

    return schema.alembic_config(engine)


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.

    ``write=True`` first checks that this client may write (:func:`check_writable`),
    then takes SQLite's write lock at BEGIN, so concurrent writers queue on the
    busy timeout instead of failing. Driver errors a user can act on (lost
    connection, no privilege, a conflict with another client) leave as one-line
    :class:`CatalogError`s (:mod:`catalog.dberrors`).
    """
    from catalog.dberrors import translated

    if write:
        check_writable(engine)
    with translated(engine), Session(engine, expire_on_commit=False) as session:
        try:
            if write:
                session.connection(execution_options={"sqlite_immediate": True})
            yield session
            session.commit()
        except BaseException:
            with suppress(DBAPIError):  # a lost connection cannot roll back; the server did
                session.rollback()
            raise
