"""Rank images whose label is likely wrong, from out-of-sample class probabilities.

In the spirit of confident learning (Northcutt, Jiang and Chuang, 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels"), every image is judged by a model that never saw
its label: test images by a model fitted on all train images, train images by k-fold
cross-fitting (folds drawn from ``seed``). Each model gives out-of-sample probabilities
``p(label | image)``; the score of an image is the *normalized margin*

    ``score = p(suggested) - p(given)``,  ``suggested = argmax over labels other than given``

(cleanlab's ``rank_by="normalized_margin"``), in ``[-1, 1]``: positive when the model prefers
another label, higher when it prefers it more. The features never see labels.

Scorers (``method=``, :data:`SCORERS` has their settings):

``"deskew-mlp"`` (default)
    Moment-deskewed pixels (:func:`catalog.audit.label_features.deskew`), their first 80
    principal components, a one-hidden-layer network (256 ReLU units, Adam, numpy) trained
    on each image and its four one-pixel shifts; two seeds averaged, 5 folds.
``"mlp"`` (the default before)
    The same network on 50 principal components of the plain pixels, one seed.
``"knn"``
    Distance-weighted vote of the 10 nearest neighbours in that PCA space (weights ``1/d``).
``"softmax"``
    Multinomial logistic regression on those features.
``"deskew-cnn"`` (``audit --thorough``; needs the ``thorough`` extra, PyTorch)
    A small convolutional network (:mod:`catalog.audit.label_cnn`) on moment-deskewed
    pixels, two seeds averaged, 2 folds.
``"cnn"`` (the same extra)
    The same network on the plain pixels.

``benchmarks/evaluate_audit.py`` plants label flips (uniform, and to the class a separate
model confuses an image with) in real MNIST images and measures how many land in the top of
each ranking; ``docs/audit-methods.md`` has the figures and why the default is the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from catalog.audit.label_cnn import CNN_SETTINGS, fit_cnn
from catalog.audit.label_features import fit_features
from catalog.audit.label_scorers import (
    HIDDEN,
    SCORER_SETTINGS,
    Ensemble,
    Network,
    knn_probabilities,
    one_blas_thread,
    train_network,
)

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "SCORERS",
    "SETTINGS",
    "THOROUGH_METHOD",
    "Ensemble",
    "LabelErrorScores",
    "Method",
    "Network",
    "Predictor",
    "Scorer",
    "fit_predictor",
    "one_blas_thread",
    "out_of_sample_probabilities",
    "rank_label_errors",
    "sparse_labels",
]

Method = Literal["deskew-mlp", "mlp", "knn", "softmax", "cnn", "deskew-cnn"]
METHODS: tuple[Method, ...] = ("deskew-mlp", "mlp", "knn", "softmax", "cnn", "deskew-cnn")
DEFAULT_METHOD: Method = "deskew-mlp"
"""The scorer a plain audit uses (chosen by ``benchmarks/evaluate_audit.py``)."""
THOROUGH_METHOD: Method = "deskew-cnn"
"""The scorer of ``audit --thorough``."""


@dataclass(frozen=True)
class Scorer:
    """How a scorer sees images and how it is fitted."""

    deskew: bool  # features of moment-deskewed pixels
    components: int  # principal components (0: the 0-1 pixels themselves)
    shifts: bool  # trained on each image's one-pixel shifts too
    seeds: int  # fits averaged
    folds: int  # of the cross-fitting
    threads: int  # fits at once


SCORERS: dict[Method, Scorer] = {
    "deskew-mlp": Scorer(deskew=True, components=80, shifts=True, seeds=2, folds=5, threads=2),
    "mlp": Scorer(deskew=False, components=50, shifts=False, seeds=1, folds=5, threads=2),
    "knn": Scorer(deskew=False, components=50, shifts=False, seeds=1, folds=5, threads=2),
    "softmax": Scorer(deskew=False, components=50, shifts=False, seeds=1, folds=5, threads=2),
    "cnn": Scorer(deskew=False, components=0, shifts=False, seeds=2, folds=2, threads=2),
    "deskew-cnn": Scorer(deskew=True, components=0, shifts=False, seeds=2, folds=2, threads=2),
}
#: The settings a fit depends on (a kept fit is reused only under the same ones).
SETTINGS = f"{SCORER_SETTINGS} {CNN_SETTINGS}"

Predictor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
"""Class probabilities ``(m, C)`` of features ``(m, D)`` from a fitted model."""


def sparse_labels(
    labels: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The distinct labels, and each label's position among them (labels need not be dense).

    >>> values, dense = sparse_labels(np.array([1000, 3, 3, 1000]))
    >>> values.tolist(), dense.tolist()
    ([3, 1000], [1, 0, 0, 1])
    """
    values, dense = np.unique(labels, return_inverse=True)
    return values.astype(np.int64), dense.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class LabelErrorScores:
    """Per-image result of :func:`rank_label_errors`, aligned with its input.

    Attributes
    ----------
    given
        ``(N,)`` int64 labels as given.
    suggested
        ``(N,)`` int64 most probable label other than the given one.
    score
        ``(N,)`` float64 ``p(suggested) - p(given)``; higher means more likely mislabelled.
    probabilities
        ``(N, C)`` float64 out-of-sample class probabilities.
    """

    given: npt.NDArray[np.int64]
    suggested: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    probabilities: npt.NDArray[np.float64]

    def ranked(self, k: int | None = None) -> npt.NDArray[np.int64]:
        """Return positions by decreasing score, ties broken by position.

        Parameters
        ----------
        k
            Number of positions to return; all when ``None``.

        Returns
        -------
        numpy.ndarray
            ``(min(k, N),)`` int64 positions, most suspicious first.
        """
        order = np.lexsort((np.arange(len(self.score)), -self.score)).astype(np.int64)
        return order if k is None else order[:k]


def rank_label_errors(
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    is_test: npt.NDArray[np.bool_],
    *,
    method: Method = DEFAULT_METHOD,
    seed: int = 0,
    n_classes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> LabelErrorScores:
    """Score every image by how likely its label is wrong.

    Parameters
    ----------
    pixels
        ``(N, H, W)`` uint8 images.
    labels
        ``(N,)`` integer labels in ``0 .. n_classes - 1``.
    is_test
        ``(N,)`` bool; test images are judged by a model fitted on all train images, train
        images by k-fold cross-fitting among the train images.
    method
        Scorer, one of :data:`METHODS` (see the module docstring).
    seed
        Seed of the fold split and of model initialisation; the same seed gives the same
        result (up to floating-point noise from threaded BLAS).
    n_classes
        Number of classes; ``labels.max() + 1`` when ``None``.
    progress
        Called with the number of images scored, as they are done.

    Returns
    -------
    LabelErrorScores
        Given and suggested labels, scores and probabilities, aligned with ``pixels``.

    Raises
    ------
    ValueError
        If shapes disagree, a label is out of range, ``method`` is unknown, or there are
        fewer than two train images per fold.
    """
    pixels = np.asarray(pixels)
    given = np.asarray(labels).astype(np.int64)
    test = np.asarray(is_test).astype(bool)
    if pixels.ndim != 3 or given.shape != (len(pixels),) or test.shape != (len(pixels),):
        msg = (
            "expected pixels (N, H, W), labels (N,) and is_test (N,), "
            f"got {pixels.shape}, {given.shape} and {test.shape}"
        )
        raise ValueError(msg)
    classes = int(given.max()) + 1 if n_classes is None and len(given) else int(n_classes or 1)
    if len(given) and (given.min() < 0 or given.max() >= classes):
        msg = f"labels must be in 0..{classes - 1}, got {given.min()}..{given.max()}"
        raise ValueError(msg)
    if method not in METHODS:
        msg = f"method must be one of {', '.join(METHODS)}, got {method!r}"
        raise ValueError(msg)
    spec = SCORERS[method]
    blocks = lambda: (pixels[s : s + 8192] for s in range(0, len(pixels), 8192))
    features = fit_features(blocks, deskewed=spec.deskew, components=spec.components)
    variants = features.variants(pixels, spec.shifts)
    # The fits are seeded each: run side by side (one BLAS thread each), the same result.
    with one_blas_thread(), ThreadPoolExecutor(min(spec.threads, os.cpu_count() or 1)) as fits:
        probabilities = out_of_sample_probabilities(
            variants, given, test, classes, method=method, seed=seed, progress=progress,
            shape=pixels.shape[1:], mapper=fits.map,
        )  # fmt: skip
    rows = np.arange(len(given))
    p_given = probabilities[rows, given]
    others = probabilities.copy()
    others[rows, given] = -np.inf
    suggested = others.argmax(axis=1).astype(np.int64)
    score = probabilities[rows, suggested] - p_given
    return LabelErrorScores(given, suggested, score.astype(np.float64), probabilities)


def out_of_sample_probabilities(
    features: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    is_test: npt.NDArray[np.bool_],
    n_classes: int,
    *,
    method: Method = DEFAULT_METHOD,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    mapper: Callable[..., Iterator[Predictor]] = map,
    shape: tuple[int, ...] = (),
) -> npt.NDArray[np.float64]:
    """Cross-fit class probabilities: train by k folds, test by a model of all train images.

    Parameters
    ----------
    features
        ``(N, D)`` float32 features, or ``(V, N, D)``: ``V`` variants of each image (the
        first the image itself, the others shifted copies to train on).
    labels
        ``(N,)`` int64 labels in ``0 .. n_classes - 1``.
    is_test
        ``(N,)`` bool test mask.
    n_classes
        Number of classes.
    method
        Scorer, one of :data:`METHODS`.
    seed
        Seed of the fold split and of model initialisation.
    progress
        Called with the number of images scored, as they are done.
    mapper
        Runs the fits: ``map`` (one after the other) or an executor's ``map`` (at once,
        each fit with its own seed, so the result is the same).
    shape
        ``(H, W)`` of the images (needed by ``cnn``, whose features are the pixels).

    Returns
    -------
    numpy.ndarray
        ``(N, n_classes)`` float64 probabilities, rows summing to 1.

    Raises
    ------
    ValueError
        If there are fewer than ``2 * folds`` train images.
    """
    spec = SCORERS[method]
    folds = spec.folds
    variants = features if features.ndim == 3 else features[None]
    train = np.flatnonzero(~is_test)
    if len(train) < 2 * folds:
        msg = f"need at least {2 * folds} train images for {folds}-fold scoring, got {len(train)}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(train), np.int64)
    fold[rng.permutation(len(train))] = np.arange(len(train)) % folds
    jobs = [(train[fold != f], train[fold == f]) for f in range(folds)]
    test = np.flatnonzero(is_test)
    if len(test):
        jobs.append((train, test))
    out = np.zeros((len(labels), n_classes), np.float64)
    fits = [(number, member) for number in range(len(jobs)) for member in range(spec.seeds)]

    def fit(job: tuple[int, int]) -> Predictor:
        number, member = job
        chosen = jobs[number][0]
        return fit_predictor(method, variants[:, chosen], labels[chosen], n_classes,
                             (seed, number, member), shape)  # fmt: skip

    fitted = list(mapper(fit, fits))
    for number, (_, judge) in enumerate(jobs):
        members = tuple(fitted[number * spec.seeds : (number + 1) * spec.seeds])
        out[judge] = Ensemble(members)(variants[0, judge])
        if progress is not None:
            progress(len(judge))
    return out


def fit_predictor(
    method: Method,
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    n_classes: int,
    seed: tuple[int, ...],
    shape: tuple[int, ...] = (),
) -> Predictor:
    """Fit one seed of the ``method`` scorer on ``fit_x`` (``(n, D)`` or ``(V, n, D)``) and
    ``fit_y``; the result predicts any ``(m, D)`` block of features."""
    if fit_x.ndim == 3 and (method in ("knn", "cnn", "deskew-cnn") or len(fit_x) == 1):
        fit_x = fit_x[0]  # these see the images only, not shifted copies
    if method == "knn":
        x_knn = fit_x
        return lambda x: knn_probabilities(x_knn, fit_y, x, n_classes)
    if method in ("cnn", "deskew-cnn"):
        height, width = (int(v) for v in shape)
        return fit_cnn(fit_x, fit_y, n_classes, seed, (height, width))
    hidden = HIDDEN if method in ("mlp", "deskew-mlp") else 0
    with one_blas_thread():
        params = train_network(fit_x, fit_y, n_classes, hidden, seed)
    return Network(params)
