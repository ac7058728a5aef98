"""Label-error scores of a whole dataset in bounded memory: fitted on a sample, all scored.

The model (:mod:`catalog.audit.label_model`) is fitted on a stratified random sample of at
most :data:`SAMPLE` train images (all of them when there are fewer; every image when there
is no train split), drawn per label in proportion from ``seed``:

* the features (:mod:`catalog.audit.label_features`: deskewed or plain pixels, principal
  components or raw) are fitted on the sample's pixels;
* sample images are judged by k-fold cross-fitting within the sample;
* every other image is judged by the model fitted on the whole sample, its pixels streamed
  from the catalog block by block, so it never saw them either.

So every image is judged out of sample, and memory is the sample's features (60,000 x 80
float32 for each of the five shifted variants: 96 MB) and a block of pixels at a time,
plus a few numbers per image, whatever the size of the dataset. On MNIST (60,000 train images) this is exactly cross-fitting on all
of train and a model of all of train for test, as before.

Time is the fits on the sample (folds + 1, times the seeds averaged: a constant, the same
at 70,000 images as at a million) plus one streamed pass that projects and scores the rest
(linear). The numpy fits are independent and seeded each, so they run :data:`FIT_THREADS`
at a time, each with one BLAS thread (its mini-batch products are too small to share):
the same result, in about half the time on two cores; so do the ``cnn`` fits, each on one
PyTorch thread.

Labels need not be dense (``{3, 1000}`` is two classes): the model sees each label's
position among the distinct labels (:func:`catalog.audit.label_model.sparse_labels`), and
suggestions are given back as label values.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.audit.images import DatasetImages
from catalog.audit.label_features import FeatureFit, fit_features
from catalog.audit.label_model import (
    DEFAULT_METHOD,
    SCORERS,
    Ensemble,
    Method,
    Predictor,
    fit_predictor,
    one_blas_thread,
    out_of_sample_probabilities,
    sparse_labels,
)

__all__ = [
    "FIT_THREADS",
    "SAMPLE",
    "StreamedScores",
    "score_images",
    "score_label_errors",
    "stratified_sample",
]

SAMPLE = 60_000
"""Most train images the label model is fitted on (the rest are scored by it)."""

FIT_THREADS = min(2, os.cpu_count() or 1)
"""Fits run at once (numpy lets go of the GIL in the products that are most of a fit)."""


@dataclass(frozen=True)
class StreamedScores:
    """Per-image result of :func:`score_label_errors`, aligned with the dataset's images.

    Attributes
    ----------
    suggested
        ``(N,)`` most probable label other than the given one (a label value).
    score
        ``(N,)`` ``p(suggested) - p(given)`` out of sample; higher is more suspicious.
    sampled
        ``(N,)`` True for the images the model was fitted on (judged by cross-fitting).
    """

    suggested: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    sampled: npt.NDArray[np.bool_]
    features: FeatureFit | None = None  # what the model sees
    predict: Predictor | None = None  # the model of the whole sample (None: nothing outside)

    def ranked(self) -> npt.NDArray[np.int64]:
        """Positions by decreasing score, ties broken by position."""
        return np.lexsort((np.arange(len(self.score)), -self.score)).astype(np.int64)


def stratified_sample(
    labels: npt.NDArray[np.int64], pool: npt.NDArray[np.int64], size: int, seed: int
) -> npt.NDArray[np.int64]:
    """Up to ``size`` positions of ``pool``, each label in proportion, sorted.

    >>> labels = np.array([0] * 6 + [1] * 3)
    >>> stratified_sample(labels, np.arange(9), 6, seed=0).tolist()  # four 0s, two 1s
    [2, 3, 4, 5, 6, 7]
    """
    if len(pool) <= size:
        return np.sort(pool)
    rng = np.random.default_rng(seed)
    picked: list[npt.NDArray[np.int64]] = []
    for label in np.unique(labels[pool]).tolist():
        members = pool[labels[pool] == label]
        take = max(1, round(len(members) * size / len(pool)))
        picked.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(picked))


def score_label_errors(
    data: DatasetImages,
    *,
    method: Method = DEFAULT_METHOD,
    seed: int = 0,
    sample: int = SAMPLE,
    progress: Callable[[int], None] | None = None,
) -> StreamedScores:
    """Score every image of ``data`` by how likely its label is wrong (see the module).

    Raises
    ------
    ValueError
        If the images have different sizes or the sample has fewer than 10 images.
    """
    values, labels = sparse_labels(data.labels)
    classes = max(len(values), 1)
    spec = SCORERS[method]
    train = np.flatnonzero(data.splits == "train")
    pool = train if len(train) else np.arange(len(labels))
    fitted = stratified_sample(labels, pool, sample, seed)
    # The sample's pixels are read in blocks (three times) rather than held.
    features = fit_features(lambda: (block for _, block in data.blocks(fitted)),
                            deskewed=spec.deskew, components=spec.components)  # fmt: skip
    variants = np.concatenate(
        [features.variants(block, spec.shifts) for _, block in data.blocks(fitted)], axis=1
    )
    fit_y = labels[fitted]
    shape = data.shape or ()
    # One BLAS thread for all the fits at once: per fit, threadpoolctl would restore the
    # setting while another fit still runs.
    with one_blas_thread(), ThreadPoolExecutor(min(FIT_THREADS, spec.threads)) as fits:
        # The model of the whole sample, for the images outside it (if any).
        whole = (
            [fits.submit(fit_predictor, method, variants, fit_y, classes,
                         (seed, spec.folds, member), shape) for member in range(spec.seeds)]
            if len(fitted) < len(labels)
            else []
        )  # fmt: skip
        probabilities = out_of_sample_probabilities(
            variants, fit_y, np.zeros(len(fitted), bool), classes, method=method, seed=seed,
            progress=progress, mapper=fits.map, shape=shape,
        )  # fmt: skip
        predict = Ensemble(tuple(f.result() for f in whole)) if whole else None
    suggested = np.zeros(len(labels), np.int64)
    score = np.zeros(len(labels), np.float64)
    suggested[fitted], score[fitted] = _margins(probabilities, fit_y)
    sampled = np.zeros(len(labels), bool)
    sampled[fitted] = True
    if predict is not None:
        del variants
        score_images(data, ~sampled, features, predict, suggested, score, progress, labels)
    if len(values):
        suggested = values[suggested]
    return StreamedScores(suggested, score, sampled, features, predict)


def score_images(
    data: DatasetImages,
    todo: npt.NDArray[np.bool_],
    features: FeatureFit,
    predict: Predictor,
    suggested: npt.NDArray[np.int64],
    score: npt.NDArray[np.float64],
    progress: Callable[[int], None] | None = None,
    dense: npt.NDArray[np.int64] | None = None,
) -> None:
    """Score the images where ``todo`` with a fitted model, into ``suggested`` and ``score``
    (positions among the distinct labels; ``dense`` is each image's, by default
    ``sparse_labels(data.labels)``).

    Most of the images are streamed in order; a few (a sampled train split's rest, an
    ingest's new images) are read by id.
    """
    labels = sparse_labels(data.labels)[1] if dense is None else dense
    rest = np.flatnonzero(todo)
    source = data.blocks() if len(rest) > len(todo) // 2 else data.blocks(rest)
    for positions, block in source:
        wanted = todo[positions]
        if not wanted.any():
            continue
        at = positions[wanted]
        probs = predict(features.transform(block[wanted]))
        suggested[at], score[at] = _margins(probs, labels[at])
        if progress is not None:
            progress(len(at))


def _margins(
    probabilities: npt.NDArray[np.float64], given: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The most probable other label and ``p(it) - p(given)``, per row."""
    rows = np.arange(len(given))
    p_given = probabilities[rows, given]
    others = probabilities.copy()
    others[rows, given] = -np.inf
    suggested = others.argmax(axis=1).astype(np.int64)
    return suggested, probabilities[rows, suggested] - p_given
