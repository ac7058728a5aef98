"""Per-image digests, normalised signatures and the pixel check behind a match.

A *digest* is the first 8 bytes of the sha256 of an image's raw uint8 row-major
pixels, as an unsigned 64-bit integer: the prefix of the catalog's
``images.sha256``. A *signature* is a short vector that survives what copies of
a dataset go through: each image is centred and scaled to unit length (which
undoes any per-image contrast stretch such as ``pyplot.imsave``'s), then
projected on the leading principal components of the reference set, so JPEG
noise moves it a little and a different digit moves it a lot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

#: Principal components kept in a signature.
SIGNATURE_DIMS = 32
#: Shifts tried (in pixels, each axis) when an image does not match unshifted.
MAX_SHIFT = 2


def digests_from_hex(hex_digests: list[str]) -> npt.NDArray[np.uint64]:
    """The 64-bit digests of sha256 hex strings (their first 16 hex digits).

    >>> int(digests_from_hex(["00000000000000ff" + "0" * 48])[0])
    255
    """
    joined = "".join(h[:16] for h in hex_digests)
    return np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64)


def digests_from_hex_array(hex_digests: npt.NDArray[np.bytes_]) -> npt.NDArray[np.uint64]:
    """:func:`digests_from_hex` of an array of ASCII hex digests (``S64``), vectorised.

    >>> int(digests_from_hex_array(np.array([b"00000000000000ff" + b"0" * 48]))[0])
    255
    """
    # 16 hex digits an image, decoded at once (24 bytes of work an image, no wider arrays)
    joined = np.asarray(hex_digests).astype("S16").tobytes().decode("ascii")
    return np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64)


def pixel_digests(pixels: Pixels) -> npt.NDArray[np.uint64]:
    """The 64-bit digests of a block of images ``(n, h, w)``."""
    import hashlib

    flat = np.ascontiguousarray(pixels).reshape(len(pixels), -1)
    return digests_from_hex([hashlib.sha256(row.tobytes()).hexdigest()[:16] for row in flat])


def unit_rows(pixels: Pixels) -> Floats:
    """Each image flattened, centred on its mean and scaled to unit length."""
    rows = pixels.reshape(len(pixels), -1).astype(np.float32)
    rows -= rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    rows /= norms
    return rows


@dataclass(frozen=True)
class Projection:
    """The principal axes signatures are taken on, and their int8 quantisation."""

    mean: Floats  # (h*w,)
    basis: Floats  # (h*w, dims)
    scale: float  # signature value = round(projection * scale), as int8

    def signatures(self, pixels: Pixels) -> Floats:
        """Signatures of a block of images, on the quantised scale (as stored)."""
        projected: Floats = np.matmul(unit_rows(pixels) - self.mean, self.basis, dtype=np.float32)
        scaled: Floats = projected * np.float32(self.scale)
        return scaled

    def quantise(self, signatures: Floats) -> npt.NDArray[np.int8]:
        return np.clip(np.rint(signatures), -127, 127).astype(np.int8)


class MomentAccumulator:
    """Mean and covariance of unit rows, accumulated over blocks (bounded memory)."""

    def __init__(self, size: int) -> None:
        self.count = 0
        self.total = np.zeros(size, dtype=np.float64)
        self.outer = np.zeros((size, size), dtype=np.float64)

    def add(self, pixels: Pixels) -> None:
        rows = unit_rows(pixels).astype(np.float64)
        self.count += len(rows)
        self.total += rows.sum(axis=0)
        self.outer += rows.T @ rows

    def projection(self, dims: int = SIGNATURE_DIMS) -> Projection:
        """The leading ``dims`` principal axes, scaled so signatures fill int8."""
        n = max(self.count, 1)
        mean = self.total / n
        covariance = self.outer / n - np.outer(mean, mean)
        values, vectors = np.linalg.eigh(covariance)
        dims = min(dims, len(mean))
        basis = vectors[:, ::-1][:, :dims]
        # Fix each axis' sign so rebuilding gives the same files.
        signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(dims)])
        basis = basis * np.where(signs == 0, 1.0, signs)
        # Three standard deviations of the widest axis map to 127 (beyond is clipped).
        spread = 3.0 * float(np.sqrt(max(values[-1], 1e-12)))
        return Projection(mean.astype(np.float32), basis.astype(np.float32), 127.0 / spread)


def box_blur(pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A 3x3 box blur of a block ``(n, h, w)`` with zero padding.

    JPEG noise lives in high frequencies that the blur removes; what tells two
    different digits apart (strokes) survives it.
    """
    n, h, w = pixels.shape
    padded = np.zeros((n, h + 2, w + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = pixels
    out = np.zeros((n, h, w), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy : dy + h, dx : dx + w]
    return out / np.float32(9.0)


def shifted(pixels: Pixels, dy: int, dx: int) -> Pixels:
    """Images moved by ``dy`` rows and ``dx`` columns, filling with zeros."""
    out = np.zeros_like(pixels)
    h, w = pixels.shape[1:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = pixels[:, ys, xs]
    return out


def shift_order(max_shift: int = MAX_SHIFT) -> list[tuple[int, int]]:
    """Every shift but (0, 0) within ``max_shift``, smallest first.

    >>> shift_order(1)[:4]
    [(-1, 0), (0, -1), (0, 1), (1, 0)]
    """
    span = range(-max_shift, max_shift + 1)
    shifts = [(dy, dx) for dy in span for dx in span if (dy, dx) != (0, 0)]
    return sorted(shifts, key=lambda s: (s[0] ** 2 + s[1] ** 2, s))


@dataclass(frozen=True)
class PairFit:
    """How well query images are explained by reference images after undoing a stretch."""

    gain: Floats  # query ~ gain * reference + offset
    offset: Floats
    max_error: Floats  # max |residual| in reference levels
    blurred_max: Floats  # the same after a 3x3 box blur of both (JPEG noise removed)
    blurred_rms: Floats
    stretched: npt.NDArray[np.bool_]  # the gain is the reference's own min/max stretch, not 1


def fit_pairs(query: Pixels, reference: Pixels) -> PairFit:
    """Fit ``query ~ gain * reference + offset`` per pair (least squares) and
    measure what is left, in the reference's levels."""
    q = query.astype(np.float32)
    r = reference.astype(np.float32)
    n = len(q)
    qf, rf = q.reshape(n, -1), r.reshape(n, -1)
    qm, rm = qf.mean(axis=1, keepdims=True), rf.mean(axis=1, keepdims=True)
    rc, qc = rf - rm, qf - qm
    gain = (rc * qc).sum(axis=1, keepdims=True) / np.maximum(
        (rc * rc).sum(axis=1, keepdims=True), 1e-6
    )
    gain = np.maximum(gain, np.float32(1e-3))
    offset = qm - gain * rm
    residual = (qc - gain * rc) / gain
    blurred = box_blur(residual.reshape(q.shape)).reshape(n, -1)
    return PairFit(
        gain=gain.ravel(),
        offset=offset.ravel(),
        max_error=np.abs(residual).max(axis=1, initial=0.0),
        blurred_max=np.abs(blurred).max(axis=1, initial=0.0),
        blurred_rms=np.sqrt((blurred * blurred).mean(axis=1)),
        stretched=_stretched(rf, gain.ravel()),
    )


def _stretched(reference: Floats, gain: Floats) -> npt.NDArray[np.bool_]:
    """Whether each gain is nearer the reference's min/max stretch than 1 (and they differ)."""
    span = reference.max(axis=1, initial=0.0) - reference.min(axis=1, initial=255.0)
    stretch = np.float32(255.0) / np.maximum(span, 1.0)
    flags: npt.NDArray[np.bool_] = (np.abs(stretch - 1) > 0.02) & (
        np.abs(gain - stretch) < np.abs(gain - 1)
    )
    return flags
