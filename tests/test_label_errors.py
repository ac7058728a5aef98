"""Label-error ranking: planted flips rank first, results are deterministic."""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from test_near_duplicates import synthetic_digits

from catalog.audit.label_model import LabelErrorScores, rank_label_errors


def flipped(
    labels: npt.NDArray[np.int64], count: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return labels with ``count`` of them changed to another label, and their positions."""
    rng = np.random.default_rng(seed)
    where = np.sort(rng.choice(len(labels), count, replace=False))
    noisy = labels.copy()
    noisy[where] = (noisy[where] + rng.integers(1, 10, count)) % 10
    return noisy, where


@pytest.fixture(scope="module")
def noisy_digits() -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
]:
    pixels, labels = synthetic_digits(400, seed=5)
    noisy, where = flipped(labels, 8, seed=6)
    return pixels, noisy, np.arange(400) >= 300, where


@pytest.mark.parametrize("method", ["deskew-mlp", "mlp", "knn"])
def test_planted_flips_rank_first(
    noisy_digits: tuple[
        npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
    ],
    method: str,
) -> None:
    pixels, noisy, is_test, where = noisy_digits
    scores = rank_label_errors(pixels, noisy, is_test, method=method)  # type: ignore[arg-type]
    assert np.isin(scores.ranked(16), where).sum() >= 7
    assert (scores.score[where] > 0).sum() >= 7


def test_result_shapes_and_meaning(
    noisy_digits: tuple[
        npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
    ],
) -> None:
    pixels, noisy, is_test, _ = noisy_digits
    scores = rank_label_errors(pixels, noisy, is_test, method="knn")
    n = len(noisy)
    assert scores.given.dtype == np.int64
    assert scores.suggested.dtype == np.int64
    assert scores.score.dtype == np.float64
    assert scores.probabilities.shape == (n, 10)
    np.testing.assert_array_equal(scores.given, noisy)
    assert (scores.suggested != scores.given).all()
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0)
    rows = np.arange(n)
    expected = (
        scores.probabilities[rows, scores.suggested] - scores.probabilities[rows, scores.given]
    )
    np.testing.assert_allclose(scores.score, expected)
    assert sorted(scores.ranked().tolist()) == list(range(n))


def test_same_seed_same_result(
    noisy_digits: tuple[
        npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
    ],
) -> None:
    pixels, noisy, is_test, _ = noisy_digits
    first = rank_label_errors(pixels[:200], noisy[:200], is_test[:200], seed=3)
    second = rank_label_errors(pixels[:200], noisy[:200], is_test[:200], seed=3)
    np.testing.assert_allclose(first.score, second.score, atol=1e-6)
    np.testing.assert_array_equal(first.suggested, second.suggested)


def test_ties_broken_by_position() -> None:
    scores = LabelErrorScores(
        given=np.zeros(4, np.int64),
        suggested=np.ones(4, np.int64),
        score=np.array([0.5, 0.9, 0.5, 0.9]),
        probabilities=np.full((4, 2), 0.5),
    )
    assert scores.ranked().tolist() == [1, 3, 0, 2]
    assert scores.ranked(3).tolist() == [1, 3, 0]


def test_progress_counts_every_image() -> None:
    pixels, labels = synthetic_digits(60, seed=7)
    done: list[int] = []
    rank_label_errors(pixels, labels, np.arange(60) >= 50, method="knn", progress=done.append)
    assert sum(done) == 60


def test_bad_inputs_raise() -> None:
    pixels, labels = synthetic_digits(30, seed=8)
    is_test = np.zeros(30, bool)
    msg = "method must be one of deskew-mlp, mlp, knn, softmax, cnn, deskew-cnn, got 'forest'"
    with pytest.raises(ValueError, match=re.escape(msg)):
        rank_label_errors(pixels, labels, is_test, method="forest")  # type: ignore[arg-type]
    msg = (
        "expected pixels (N, H, W), labels (N,) and is_test (N,), got (30, 28, 28), (29,) and (30,)"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        rank_label_errors(pixels, labels[:29], is_test)
    with pytest.raises(ValueError, match="need at least 10 train images"):
        rank_label_errors(pixels, labels, np.ones(30, bool))


@pytest.mark.mnist
def test_real_mnist_planted_flips(mnist_dir: Path) -> None:
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    noisy, where = flipped(labels, 100, seed=0)
    is_test = np.arange(len(labels)) >= 8_000
    scores = rank_label_errors(pixels, noisy, is_test, method="knn")
    assert np.isin(scores.ranked(200), where).sum() >= 80


def test_fits_side_by_side_give_the_same_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample's six fits run two at a time; each is seeded, so that changes nothing,
    and every image outside the sample is scored by the model of the whole sample."""
    from catalog.audit import label_scoring
    from catalog.audit.images import DatasetImages

    pixels, labels = synthetic_digits(300, seed=9)
    splits = np.where(np.arange(300) < 200, "train", "test")
    data = DatasetImages.from_arrays(pixels, labels, splits, chunk=64)
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(label_scoring, "FIT_THREADS", threads)
        results.append(label_scoring.score_label_errors(data, sample=150))
    one, two = results
    assert np.array_equal(one.score, two.score)
    assert np.array_equal(one.suggested, two.suggested)
    assert 140 <= one.sampled.sum() <= 160
    assert not one.sampled[200:].any()  # test images are never in the sample
    assert (one.score != 0).all()  # and all images were scored


def test_sparse_label_values_are_scored_as_classes() -> None:
    """Labels {3, 1000} are two classes (not 1001): suggestions come back as label values,
    and the scores are those of the same labels written 0 and 1."""
    from catalog.audit.images import DatasetImages
    from catalog.audit.label_scoring import score_label_errors

    pixels, labels = synthetic_digits(300, seed=10, classes=2)
    noisy, where = flipped(labels, 6, seed=11)
    noisy = noisy % 2  # flipped() draws among 10 labels; keep two
    where = where[noisy[where] != labels[where]]
    splits = np.where(np.arange(300) < 220, "train", "test")
    dense = score_label_errors(DatasetImages.from_arrays(pixels, noisy, splits, chunk=64))
    sparse_labels = np.where(noisy == 0, 3, 1000).astype(np.int64)
    sparse = score_label_errors(DatasetImages.from_arrays(pixels, sparse_labels, splits, chunk=64))
    np.testing.assert_allclose(sparse.score, dense.score)
    assert set(np.unique(sparse.suggested).tolist()) <= {3, 1000}
    np.testing.assert_array_equal(sparse.suggested, np.where(dense.suggested == 0, 3, 1000))
    assert (sparse.suggested != sparse_labels).all()
    assert np.isin(sparse.ranked()[: 2 * len(where)], where).sum() >= len(where) - 1


@pytest.mark.slow
def test_cnn_scorer_ranks_planted_flips_first(
    noisy_digits: tuple[
        npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
    ],
) -> None:
    pytest.importorskip("torch")
    pixels, noisy, is_test, where = noisy_digits
    scores = rank_label_errors(pixels, noisy, is_test, method="cnn")
    assert np.isin(scores.ranked(16), where).sum() >= 6
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_thorough_without_torch_is_one_line_naming_the_extra(
    tiny_catalog: object, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from catalog.cli import app

    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(app, ["--db", db_url, "audit", "--thorough", "--no-store"])
    assert result.exit_code == 1
    assert result.output == (
        'Error: audit --thorough needs PyTorch: pip install "mnist-catalog[thorough]"\n'
    )
    both = CliRunner().invoke(app, ["--db", db_url, "audit", "--thorough", "--method", "knn"])
    assert both.exit_code == 2
