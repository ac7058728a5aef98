"""The numpy label-error scorers, fitted on features (:mod:`catalog.audit.label_model`).

``mlp`` and ``deskew-mlp``: a one-hidden-layer ReLU network, and ``softmax``: multinomial
logistic regression, both trained by Adam with weight decay in numpy (:func:`train_network`,
applied by :class:`Network`), on one set of features or, with shift augmentation, on a
random one of several variants of each image per epoch; ``knn``: a distance-weighted vote
of the nearest fitted images (:func:`knn_probabilities`). :class:`Ensemble` averages the
probabilities of fits from several seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "AUGMENTED_EPOCHS",
    "BATCH",
    "EPOCHS",
    "HIDDEN",
    "LEARNING_RATE",
    "MIN_STEPS",
    "NEIGHBOURS",
    "SCORER_SETTINGS",
    "WEIGHT_DECAY",
    "Ensemble",
    "Network",
    "knn_probabilities",
    "one_blas_thread",
    "train_network",
]

NEIGHBOURS = 10
"""Neighbours that vote in the ``knn`` scorer."""
HIDDEN = 256
"""Hidden units of the ``mlp`` scorer."""
EPOCHS = 8
"""Passes over the fitting set (more for small sets, see :data:`MIN_STEPS`)."""
AUGMENTED_EPOCHS = 12
"""Passes when every image has shifted variants (each pass sees one of each image's)."""
MIN_STEPS = 1200
"""Fewest Adam steps of a fit."""
BATCH = 512
"""Largest mini-batch."""
LEARNING_RATE = 3e-3
"""Adam's step size at the first epoch (cosine-annealed to 0)."""
WEIGHT_DECAY = 1e-4
"""L2 penalty on the weight matrices."""
_KNN_BLOCK = 1024  # query rows per block of the knn vote

#: The scorers' settings, as named in a kept fit's key.
SCORER_SETTINGS = f"hidden={HIDDEN} steps={EPOCHS},{MIN_STEPS},{BATCH} " + (
    f"lr={LEARNING_RATE},{WEIGHT_DECAY} knn={NEIGHBOURS} augmented={AUGMENTED_EPOCHS}"
)


@dataclass(frozen=True)
class Network:
    """A fitted ``mlp`` or ``softmax`` scorer: its weights, which predict any features."""

    params: list[npt.NDArray[np.float32]]

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return _apply_network(self.params, x)


@dataclass(frozen=True)
class Ensemble:
    """Fits from several seeds: their class probabilities averaged."""

    members: tuple[Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]], ...]

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        total = self.members[0](x)
        for member in self.members[1:]:
            total = total + member(x)
        return total / len(self.members)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run BLAS on one thread while training: its mini-batch products are too small to gain
    from more, and on a busy machine threads that wait for each other by spinning made a
    fit hundreds of times slower. Uses threadpoolctl (a core dependency); where it cannot
    be imported, BLAS keeps its own setting."""
    try:
        from threadpoolctl import (  # type: ignore[import-untyped, unused-ignore]
            threadpool_limits,
        )
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted: npt.NDArray[np.float32] = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def train_network(
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    n_classes: int,
    hidden: int,
    seed: tuple[int, ...],
) -> list[npt.NDArray[np.float32]]:
    """Fit softmax regression (``hidden == 0``) or a one-hidden-layer ReLU network by Adam.

    ``fit_x`` is ``(n, D)``, or ``(V, n, D)``: ``V`` variants of each image (shifted copies),
    of which every epoch trains on one drawn at random per image.
    """
    rng = np.random.default_rng(seed)
    variants = fit_x if fit_x.ndim == 3 else fit_x[None]
    d = variants.shape[2]
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
    n = variants.shape[1]
    # Small sets get smaller batches and more epochs, so every fit takes enough steps.
    size = min(BATCH, max(32, n // 20))
    per_epoch = -(-n // size)
    epochs = max(EPOCHS if len(variants) == 1 else AUGMENTED_EPOCHS, -(-MIN_STEPS // per_epoch))
    step = 0
    beta1, beta2 = 0.9, 0.999
    for epoch in range(epochs):
        rate = LEARNING_RATE * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        order = rng.permutation(n)
        variant: npt.NDArray[np.int64] = (
            rng.integers(0, len(variants), size=(n,), dtype=np.int64)
            if len(variants) > 1
            else np.zeros(n, np.int64)
        )
        for start in range(0, n, size):
            batch = order[start : start + size]
            xb, yb = variants[variant[batch], batch], onehot[fit_y[batch]]
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
                    g = g + np.float32(WEIGHT_DECAY) * p
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


def knn_probabilities(
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    x: npt.NDArray[np.float32],
    n_classes: int,
) -> npt.NDArray[np.float64]:
    """Distance-weighted vote of the nearest fitted images, smoothed so no class has p = 0."""
    k = min(NEIGHBOURS, len(fit_x))
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
