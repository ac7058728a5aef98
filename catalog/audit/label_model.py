"""Rank images whose label is likely wrong, from out-of-sample class probabilities.

In the spirit of confident learning (Northcutt, Jiang and Chuang, 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels"), every image is judged by a model that never saw
its label: test images by a model fitted on all train images, train images by 5-fold
cross-fitting (folds drawn from ``seed``). Each model gives out-of-sample probabilities
``p(label | image)``; the score of an image is the *normalized margin*

    ``score = p(suggested) - p(given)``,  ``suggested = argmax over labels other than given``

(cleanlab's ``rank_by="normalized_margin"``), in ``[-1, 1]``: positive when the model prefers
another label, higher when it prefers it more. Images are described by their first 50
principal components on the 0-1 pixel scale (:func:`catalog.audit.features.pca_features`);
the PCA sees pixels only, never labels.

Scorers (``method=``):

``"mlp"`` (default)
    A one-hidden-layer network (256 ReLU units) trained by Adam with weight decay on the PCA
    features, in numpy.
``"knn"``
    Distance-weighted vote of the 10 nearest neighbours in PCA space (weights ``1/d``).
``"softmax"``
    Multinomial logistic regression on the PCA features.

``benchmarks/evaluate_audit.py`` plants 1% label flips in real MNIST images and measures how
many land in the top of the ranking; ``docs/audit-methods.md`` has the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from catalog.audit.features import pca_features
from catalog.audit.label_scorers import (
    HIDDEN,
    SCORER_SETTINGS,
    Network,
    knn_probabilities,
    one_blas_thread,
    train_network,
)

__all__ = [
    "METHODS",
    "SETTINGS",
    "LabelErrorScores",
    "Method",
    "Network",
    "Predictor",
    "fit_predictor",
    "one_blas_thread",
    "out_of_sample_probabilities",
    "rank_label_errors",
]

Method = Literal["mlp", "knn", "softmax"]
METHODS: tuple[Method, ...] = ("mlp", "knn", "softmax")

FOLDS = 5
"""Folds of the cross-fitting: each image is judged by a model fitted on the other four."""
#: The settings a fit depends on (a kept fit is reused only under the same ones).
SETTINGS = f"folds={FOLDS} {SCORER_SETTINGS}"


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
    method: Method = "mlp",
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
        images by 5-fold cross-fitting among the train images.
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
        fewer than ``2 * 5`` train images.
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
    probabilities = out_of_sample_probabilities(
        pca_features(pixels), given, test, classes, method=method, seed=seed, progress=progress
    )
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
    method: Method = "mlp",
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    mapper: Callable[..., Iterator[npt.NDArray[np.float64]]] = map,
) -> npt.NDArray[np.float64]:
    """Cross-fit class probabilities: train by 5 folds, test by a model of all train images.

    Parameters
    ----------
    features
        ``(N, D)`` float32 features.
    labels
        ``(N,)`` int64 labels.
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

    Returns
    -------
    numpy.ndarray
        ``(N, n_classes)`` float64 probabilities, rows summing to 1.

    Raises
    ------
    ValueError
        If there are fewer than ``2 * 5`` train images.
    """
    train = np.flatnonzero(~is_test)
    if len(train) < 2 * FOLDS:
        msg = f"need at least {2 * FOLDS} train images for {FOLDS}-fold scoring, got {len(train)}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(train), np.int64)
    fold[rng.permutation(len(train))] = np.arange(len(train)) % FOLDS
    jobs = [(train[fold != f], train[fold == f]) for f in range(FOLDS)]
    test = np.flatnonzero(is_test)
    if len(test):
        jobs.append((train, test))
    out = np.zeros((len(labels), n_classes), np.float64)

    def predict(number: int) -> npt.NDArray[np.float64]:
        fit, judge = jobs[number]
        x, y = features[fit], labels[fit]
        return _predict(method, x, y, features[judge], n_classes, (seed, number))

    for (_, judge), probabilities in zip(jobs, mapper(predict, range(len(jobs))), strict=True):
        out[judge] = probabilities
        if progress is not None:
            progress(len(judge))
    return out


Predictor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
"""Class probabilities ``(m, C)`` of features ``(m, D)`` from a fitted model."""


def fit_predictor(
    method: Method,
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    n_classes: int,
    seed: tuple[int, int],
) -> Predictor:
    """Fit the ``method`` scorer on ``fit_x, fit_y``; the result predicts any block of features."""
    if method == "knn":
        return lambda x: knn_probabilities(fit_x, fit_y, x, n_classes)
    hidden = HIDDEN if method == "mlp" else 0
    with one_blas_thread():
        params = train_network(fit_x, fit_y, n_classes, hidden, seed)
    return Network(params)


def _predict(
    method: Method,
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    x: npt.NDArray[np.float32],
    n_classes: int,
    seed: tuple[int, int],
) -> npt.NDArray[np.float64]:
    return fit_predictor(method, fit_x, fit_y, n_classes, seed)(x)
