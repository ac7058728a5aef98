"""mnist-catalog: a database-backed catalog for MNIST-style digit datasets.

``Catalog`` and ``CatalogSelection`` load on first use (PEP 562), so that
``import catalog`` (and so ``mnist-catalog --help``) does not import numpy,
SQLAlchemy or Pillow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from catalog.selection import Selection

if TYPE_CHECKING:
    from catalog.api.handle import Catalog
    from catalog.api.selection import CatalogSelection

__all__ = ["Catalog", "CatalogError", "CatalogSelection", "Selection"]
__version__ = "0.1.0"

_LAZY = {"Catalog": "catalog.api.handle", "CatalogSelection": "catalog.api.selection"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'catalog' has no attribute {name!r}"
    raise AttributeError(msg)
