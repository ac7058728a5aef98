"""Image similarity: per-image embeddings stored in the catalog and a nearest-neighbour index.

- :mod:`~catalog.similarity.embed`: the embedding of uint8 pixels (numpy only);
- :mod:`~catalog.similarity.store`: embeddings computed incrementally into the
  ``embeddings`` table and loaded back as arrays;
- :mod:`~catalog.similarity.index`: exact search for small sets, faiss-cpu (the ``ann``
  extra, imported only when used) for large ones;
- :mod:`~catalog.similarity.neighbours`: nearest neighbours of images and near-duplicate
  candidate pairs.

``docs/ann-choice.md`` has the method's calibration and the comparison of libraries.
"""

from catalog.similarity.embed import KIND, embed_pixels
from catalog.similarity.index import MissingExtraError, build_index
from catalog.similarity.neighbours import (
    CandidatePairs,
    NeighbourIndex,
    Neighbours,
    build_neighbour_index,
    candidate_pairs,
    nearest,
)
from catalog.similarity.store import (
    StoredEmbeddings,
    compute_embeddings,
    load_embeddings,
    missing_ids,
)

__all__ = [
    "KIND",
    "CandidatePairs",
    "MissingExtraError",
    "NeighbourIndex",
    "Neighbours",
    "StoredEmbeddings",
    "build_index",
    "build_neighbour_index",
    "candidate_pairs",
    "compute_embeddings",
    "embed_pixels",
    "load_embeddings",
    "missing_ids",
    "nearest",
]
