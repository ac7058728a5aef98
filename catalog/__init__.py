"""mnist-catalog: a database-backed catalog for MNIST-style digit datasets."""

from catalog.api import Catalog, CatalogSelection
from catalog.errors import CatalogError
from catalog.query import Selection

__all__ = ["Catalog", "CatalogError", "CatalogSelection", "Selection"]
__version__ = "0.1.0"
