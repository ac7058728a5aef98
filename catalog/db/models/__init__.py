"""The catalog's tables as SQLAlchemy ORM models, one module per feature.

:mod:`~catalog.db.models.images` holds the core (datasets, sources, images) and
:mod:`~catalog.db.models.exports` the record of exports; each feature that adds
tables adds a module here and a name below. Importing any model imports this
package first, so ``Base.metadata`` (and so Alembic's ``check``) always sees
every table.
"""

from catalog.db.models import (  # noqa: F401  (registers every table on Base.metadata)
    audit_runs,
    base,
    decisions,
    embeddings,
    exports,
    family,
    images,
    kept_states,
    label_counts,
    measures,
    versions,
)
