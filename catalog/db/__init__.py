"""Storage: the tables, the engine and its sessions, the schema's migrations, and
the driver's errors, types and locks. Nothing here knows an image format or a
selection; every layer above reads and writes the catalog through it.

- :mod:`~catalog.db.models`: the ORM models, one module per feature;
- :mod:`~catalog.db.engine`: a catalog's URL, its engine, ``session_scope``;
- :mod:`~catalog.db.schema`: opening a catalog at any revision (Alembic);
- :mod:`~catalog.db.bulk`: many rows in one driver call;
- :mod:`~catalog.db.translate`: driver errors as one-line ``CatalogError``\\ s;
- :mod:`~catalog.db.types`: UTC timestamps and byte-wise ordering of text;
- :mod:`~catalog.db.locks`: PostgreSQL advisory locks for migrations and ingest.
"""
