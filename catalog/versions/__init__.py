"""Versions: a selection frozen with its labels, given back byte for byte, and diffed.

A version (``mnist-catalog freeze NAME``) records which images a selection held (by
place and pixel sha256), each one's label at that moment, the label set's names, the
position in the decision log, who and when; it is never edited. Its content id
(:mod:`catalog.versions.content`) is a sha256 over its sorted images, the same in any
catalog holding the same images with the same labels. :mod:`~catalog.versions.freeze`
freezes and lists, :mod:`~catalog.versions.diff` compares two versions (or one and the
selection as it stands), :mod:`~catalog.versions.files` moves a version between
catalogs as a JSON or JSONL file. Selecting within a version (``--version NAME``) is a
field of :class:`~catalog.selection.Selection`, compiled by :mod:`catalog.select.filters`.
"""
