"""The ``cnn`` label-error scorer (``audit --thorough``): a small convolutional network on
PyTorch CPU, the ``thorough`` extra, imported only here and only when it is used.

Two 3x3 convolutions (:data:`CHANNELS`: 16 and 32, each followed by ReLU and 2x2 max
pooling), 128 hidden units, trained by Adam for :data:`EPOCHS` passes over the 0-1 pixels, each image
moved by a random shift of up to :data:`MAX_SHIFT` pixels in each direction every time
it is seen (zeros fill in). ``docs/audit-methods.md`` has what it finds and what it costs.

Each fit runs on one thread (``torch.set_num_threads(1)``) and the audit runs two fits at
once, as it does the numpy ones: on a machine other work shares, two PyTorch threads that
wait for each other took 2.5 times the wall time of one per mini-batch (measured while
the load average was 6 on 2 cores), while two fits side by side keep both cores busy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.errors import MissingExtraError

__all__ = ["CNN_SETTINGS", "EPOCHS", "MAX_SHIFT", "CnnModel", "fit_cnn", "import_torch"]

EPOCHS = 3
"""Passes over the fitting set (more for small sets, see :data:`MIN_STEPS`)."""
MIN_STEPS = 400
"""Fewest Adam steps of a fit: a small set gets smaller batches and more passes."""
MAX_SHIFT = 2
"""Largest random shift (pixels, each direction) of a training image."""
BATCH = 128
LEARNING_RATE = 2e-3
HIDDEN = 128
CHANNELS = (16, 32)
"""Channels of the two convolutions: 32 and 64 cost three times the CPU per mini-batch."""
_PREDICT_BLOCK = 2048
#: The settings a fit depends on, as named in a kept fit's key.
CNN_SETTINGS = f"cnn={EPOCHS},{MIN_STEPS},{MAX_SHIFT},{BATCH},{LEARNING_RATE},{HIDDEN},{CHANNELS}"


def import_torch() -> Any:
    """PyTorch, or a one-line error naming the extra that brings it."""
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        msg = 'audit --thorough needs PyTorch: pip install "mnist-catalog[thorough]"'
        raise MissingExtraError(msg) from None
    return torch


@dataclass(frozen=True)
class CnnModel:
    """A fitted network; predicts class probabilities of flattened 0-1 pixels."""

    model: Any
    shape: tuple[int, int]

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        torch = import_torch()
        torch.set_num_threads(1)
        out = np.empty((len(x), self.model[-1].out_features), np.float64)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(x), _PREDICT_BLOCK):
                block = torch.from_numpy(np.ascontiguousarray(x[start : start + _PREDICT_BLOCK]))
                logits = self.model(block.reshape(-1, 1, *self.shape))
                out[start : start + len(block)] = torch.softmax(logits, 1).double().numpy()
        return out


def fit_cnn(
    fit_x: npt.NDArray[np.float32],
    fit_y: npt.NDArray[np.int64],
    n_classes: int,
    seed: tuple[int, ...],
    shape: tuple[int, int],
) -> CnnModel:
    """Fit the network on ``(n, H * W)`` 0-1 pixels of images of ``shape``."""
    torch = import_torch()
    nn = torch.nn
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(2**62)))
    torch.manual_seed(int(generator.initial_seed()))
    h, w = shape
    first, second = CHANNELS
    model = nn.Sequential(
        nn.Conv2d(1, first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(second * (h // 4) * (w // 4), HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, n_classes),
    )  # fmt: skip
    x = torch.from_numpy(np.ascontiguousarray(fit_x, np.float32)).reshape(-1, 1, h, w)
    y = torch.from_numpy(np.asarray(fit_y, np.int64))
    n = len(x)
    size = min(BATCH, max(16, n // 10))
    epochs = max(EPOCHS, -(-MIN_STEPS // -(-n // size)))
    steps = epochs * -(-n // size)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=steps)
    padded = nn.functional.pad(x, (MAX_SHIFT,) * 4)
    rows = torch.arange(h)
    cols = torch.arange(w)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, size):
            batch = order[start : start + size]
            dy, dx = torch.randint(0, 2 * MAX_SHIFT + 1, (2, len(batch)), generator=generator)
            moved = padded[
                batch[:, None, None],
                0,
                (rows[None, :] + dy[:, None])[:, :, None],
                (cols[None, :] + dx[:, None])[:, None, :],
            ].unsqueeze(1)
            loss = nn.functional.cross_entropy(model(moved), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return CnnModel(model, shape)
