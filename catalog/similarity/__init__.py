"""Image similarity: per-image embeddings stored in the catalog and a nearest-neighbour index.

- :mod:`~catalog.similarity.embed`: the embedding of uint8 pixels (numpy only);
- :mod:`~catalog.similarity.vectors`: embeddings computed incrementally into the
  ``embeddings`` table and loaded back as arrays;
- :mod:`~catalog.similarity.index`: exact search for small sets, faiss-cpu (a core
  dependency, imported only when used; the exact search if it cannot be) for large ones;
- :mod:`~catalog.similarity.neighbours`: nearest neighbours of images and near-duplicate
  candidate pairs.

``docs/ann-choice.md`` has the method's calibration and the comparison of libraries.
"""
