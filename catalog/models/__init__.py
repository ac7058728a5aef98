"""ORM models of the catalog's features, one module per feature.

The core tables (datasets, sources, images, exports, exported_files) live in
:mod:`catalog.db`; each feature that adds tables adds a module here and one
import below, so ``Base.metadata`` (and so Alembic's ``check``) sees every table
once this package is imported.
"""

from catalog.models import decisions as decisions
from catalog.models import family  # noqa: F401  (label sets, per-image metadata)
from catalog.models.audit_runs import AuditFinding as AuditFinding
from catalog.models.audit_runs import AuditRun as AuditRun
from catalog.models.embeddings import Embedding as Embedding
from catalog.models.kept_states import KeptState as KeptState
from catalog.models.label_counts import LabelCount as LabelCount
from catalog.models.measures import ImageMeasure as ImageMeasure
