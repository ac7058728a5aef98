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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from catalog.audit.features import pca_features

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
_NEIGHBOURS = 10
_HIDDEN = 256
_EPOCHS = 8
_MIN_STEPS = 1200
_BATCH = 512
_LEARNING_RATE = 3e-3
_WEIGHT_DECAY = 1e-4
_KNN_BLOCK = 1024
#: The settings a fit depends on (a kept fit is reused only under the same ones).
SETTINGS = f"folds={FOLDS} hidden={_HIDDEN} steps={_EPOCHS},{_MIN_STEPS},{_BATCH} " + (
    f"lr={_LEARNING_RATE},{_WEIGHT_DECAY} knn={_NEIGHBOURS}"
)


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
        return lambda x: _knn(fit_x, fit_y, x, n_classes)
    hidden = _HIDDEN if method == "mlp" else 0
    with one_blas_thread():
        params = _train_network(fit_x, fit_y, n_classes, hidden, seed)
    return Network(params)


@dataclass(frozen=True)
class Network:
    """A fitted ``mlp`` or ``softmax`` scorer: its weights, which predict any features."""

    params: list[npt.NDArray[np.float32]]

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return _apply_network(self.params, x)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run BLAS on one thread while training: its mini-batch products are too small to gain
    from more, and on a busy machine threads that wait for each other by spinning made a
    fit hundreds of times slower. Uses threadpoolctl when installed (the ``ann`` extra
    brings it); without it, BLAS keeps its own setting."""
    try:
        from threadpoolctl import (  # type: ignore[import-untyped, unused-ignore]
            threadpool_limits,
        )
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _predict(
    method: Method,
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    x: npt.NDArray[np.float32],
    n_classes: int,
    seed: tuple[int, int],
) -> npt.NDArray[np.float64]:
    return fit_predictor(method, fit_x, fit_y, n_classes, seed)(x)


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted: npt.NDArray[np.float32] = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _train_network(
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    n_classes: int,
    hidden: int,
    seed: tuple[int, int],
) -> list[npt.NDArray[np.float32]]:
    """Fit softmax regression (``hidden == 0``) or a one-hidden-layer ReLU network by Adam."""
    rng = np.random.default_rng(seed)
    d = fit_x.shape[1]
    shapes = [(d, hidden), (hidden,), (hidden, n_classes), (n_classes,)]
    shapes = shapes if hidden else [(d, n_classes), (n_classes,)]
    params = [
        (rng.standard_normal(s) * np.sqrt(2.0 / s[0])).astype(np.float32)
        if len(s) == 2
        else np.zeros(s, np.float32)
        for s in shapes
    ]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    onehot = np.eye(n_classes, dtype=np.float32)
    n = len(fit_x)
    # Small sets get smaller batches and more epochs, so every fit takes enough steps.
    size = min(_BATCH, max(32, n // 20))
    per_epoch = -(-n // size)
    epochs = max(_EPOCHS, -(-_MIN_STEPS // per_epoch))
    step = 0
    beta1, beta2 = 0.9, 0.999
    for epoch in range(epochs):
        rate = _LEARNING_RATE * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        order = rng.permutation(n)
        for start in range(0, n, size):
            batch = order[start : start + size]
            xb, yb = fit_x[batch], onehot[fit_y[batch]]
            if hidden:
                pre = xb @ params[0] + params[1]
                act = np.maximum(pre, 0)
                delta = (_softmax(act @ params[2] + params[3]) - yb) / np.float32(len(batch))
                back = (delta @ params[2].T) * (pre > 0)
                grads = [xb.T @ back, back.sum(axis=0), act.T @ delta, delta.sum(axis=0)]
            else:
                delta = (_softmax(xb @ params[0] + params[1]) - yb) / np.float32(len(batch))
                grads = [xb.T @ delta, delta.sum(axis=0)]
            step += 1
            correction = np.sqrt(1 - beta2**step) / (1 - beta1**step)
            for p, g, m, v in zip(params, grads, first, second, strict=True):
                if p.ndim == 2:
                    g = g + np.float32(_WEIGHT_DECAY) * p
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                p -= np.float32(rate * correction) * m / (np.sqrt(v) + np.float32(1e-8))
    return params


def _apply_network(
    params: list[npt.NDArray[np.float32]], x: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Class probabilities of ``x`` under fitted weights (two layers, or one)."""
    if len(params) == 4:
        logits = np.maximum(x @ params[0] + params[1], 0) @ params[2] + params[3]
    else:
        logits = x @ params[0] + params[1]
    return _softmax(logits.astype(np.float32)).astype(np.float64)


def _knn(
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    x: npt.NDArray[np.float32],
    n_classes: int,
) -> npt.NDArray[np.float64]:
    """Distance-weighted vote of the nearest fitted images, smoothed so no class has p = 0."""
    k = min(_NEIGHBOURS, len(fit_x))
    fit_sq = np.einsum("ij,ij->i", fit_x, fit_x)
    out = np.empty((len(x), n_classes), np.float64)
    for start in range(0, len(x), _KNN_BLOCK):
        xb = x[start : start + _KNN_BLOCK]
        dist = fit_sq[None, :] - 2 * (xb @ fit_x.T)
        near = np.argpartition(dist, k - 1, axis=1)[:, :k]
        d = np.take_along_axis(dist, near, axis=1) + np.einsum("ij,ij->i", xb, xb)[:, None]
        weight = 1.0 / (np.sqrt(np.maximum(d, 0)).astype(np.float64) + 1e-3)
        votes = np.zeros((len(xb), n_classes), np.float64)
        np.add.at(votes, (np.arange(len(xb))[:, None], fit_y[near]), weight)
        votes += 1e-3 * weight.sum(axis=1, keepdims=True) / n_classes
        out[start : start + _KNN_BLOCK] = votes / votes.sum(axis=1, keepdims=True)
    return out
