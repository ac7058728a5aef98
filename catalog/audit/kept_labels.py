"""Label errors after an ingest: the last audit's fit reused, only new images scored.

The label model (:mod:`catalog.audit.label_scoring`) is fitted on a stratified sample of
the train split drawn from the seed, so while the train split is the same images with the
same labels, a full audit fits the very same model and gives every earlier image the same
score. An audit therefore keeps the fit (the principal components and the weights of the
model of the whole sample) and every image's score, and the next one reuses both when the
train split is unchanged: only the images it has no score for (new, or relabelled since)
are scored, by the kept model, as a full audit would score them, so the findings are a
full audit's. It fits again (and keeps that) when train images were added, removed or
relabelled (images are told apart by id and pixel digest), under other settings, or with
``audit --full``.

A train split never grows in place (an ingest adds new splits, or replaces one whole with
new images), so reusing a fit on a grown train split, which a full audit would fit again
on a new sample, is not offered: it would change the results.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.audit.features import PcaFit
from catalog.audit.images import DatasetImages
from catalog.audit.kept_state import (
    find_ids,
    pack,
    pack_ids,
    read_state,
    unpack,
    unpack_ids,
    write_state,
)
from catalog.audit.label_features import FeatureFit
from catalog.audit.label_model import SCORERS, SETTINGS, Ensemble, Method, Network
from catalog.audit.label_scoring import SAMPLE, StreamedScores, score_images, score_label_errors
from catalog.select.filters import dataset_id

CHECK = "label-errors"
VERSION = 3


def state_key(method: Method, seed: int) -> str:
    """What the kept fit depends on besides the images and their labels."""
    return f"v{VERSION} {method} {SCORERS[method]} seed={seed} sample={SAMPLE} {SETTINGS}"


@dataclass
class Scored:
    """Label-error scores of every image, and how they were had."""

    scores: StreamedScores
    reuse: str  # for the summary
    fitted_on: int


def label_scores(
    data: DatasetImages,
    method: Method,
    seed: int,
    progress: Callable[[int], None] | None,
    *,
    full: bool,
) -> Scored:
    """Scores of ``data``'s images (labelled ones only), building on a kept fit if sound."""
    session = data.session
    if session is None:
        scores = score_label_errors(data, method=method, seed=seed, progress=progress)
        return Scored(scores, "fitted (images in memory)", int(scores.sampled.sum()))
    dataset = dataset_id(session, data.name)
    key = state_key(method, seed)
    why = "--full"
    if not full:
        blobs = read_state(session, dataset, CHECK, key)
        kept = _usable(data, blobs)
        if isinstance(kept, str):
            why = kept
        else:
            return _score_new(data, key, kept, progress)
    scores = score_label_errors(data, method=method, seed=seed, progress=progress)
    reuse = f"fitted ({why})"
    if not _keep(session, dataset, key, data, scores):
        reuse += "; not kept (the catalog refused the write)"
    return Scored(scores, reuse, int(scores.sampled.sum()))


def _pool(data: DatasetImages) -> npt.NDArray[np.int64]:
    train = np.flatnonzero(data.splits == "train")
    return train if len(train) else np.arange(len(data), dtype=np.int64)


def _values(data: DatasetImages) -> npt.NDArray[np.int64]:
    return np.unique(data.labels).astype(np.int64)


def _keep(
    session: Session, dataset: int, key: str, data: DatasetImages, scores: StreamedScores
) -> bool:
    features, predict = scores.features, scores.predict
    if (
        features is None
        or features.pca is None
        or not isinstance(predict, Ensemble)
        or not all(isinstance(m, Network) for m in predict.members)
    ):
        return True  # nothing outside the sample to score later (or a network): not kept
    pool = _pool(data)
    token = secrets.randbits(62)  # names the fit the scores kept beside it came from
    weights = {
        f"m{j}_weight{i}": w
        for j, member in enumerate(predict.members)
        for i, w in enumerate(member.params)  # type: ignore[attr-defined]
    }
    pca = features.pca
    blobs = {
        "model": pack(mean=pca.mean, basis=pca.basis, deskew=np.array(features.deskew),
                      scale=np.array(pca.scale), values=_values(data),
                      when=np.array(datetime.now(UTC).isoformat(timespec="seconds")),
                      sampled=np.array(int(scores.sampled.sum())), token=np.array(token),
                      **weights),
        "pool": pack_ids(data.ids[pool]),
        "pool_labels": pack(labels=data.labels[pool].astype(np.int64),
                            digests=data.digests[pool]),
        "ids": pack_ids(data.ids),
        "scores": _packed_scores(data, scores, token),
    }  # fmt: skip
    return write_state(session, dataset, CHECK, key, blobs)


@dataclass
class _KeptFit:
    """A kept fit that can be built on, and the scores kept beside it."""

    features: FeatureFit
    predict: Ensemble
    scores: dict[str, npt.NDArray[np.generic]]  # ids, labels, digests, suggested, score, ...
    note: str  # for the summary
    fitted_on: int
    token: int


def _usable(data: DatasetImages, blobs: dict[str, bytes] | None) -> _KeptFit | str:
    """The kept fit and scores, with a note for the summary; or why they cannot be used."""
    if blobs is None or not {"model", "pool", "pool_labels", "ids", "scores"} <= set(blobs):
        return "nothing kept under these settings"
    model = unpack(blobs["model"])
    scores = unpack(blobs["scores"]) | {"ids": unpack_ids(blobs["ids"])}
    if int(scores["token"]) != int(model["token"]):
        return "the kept fit and scores disagree (two audits at once?)"
    if not np.array_equal(model["values"], _values(data)):
        return "the labels are not those the model was fitted on"
    kept_pool = unpack_ids(blobs["pool"])
    kept_labels = unpack(blobs["pool_labels"])
    pool = _pool(data)
    at = find_ids(data.ids[pool], kept_pool)
    if (
        (at < 0).any()
        or (data.labels[pool][at] != kept_labels["labels"]).any()
        or (data.digests[pool][at] != kept_labels["digests"]).any()
    ):  # an id can be given again to a new image once its own was deleted
        return "train images were removed, replaced or relabelled since the fit"
    if len(pool) != len(kept_pool):
        return f"{len(pool) - len(kept_pool):,} train images added since the fit"
    members = sorted({k.split("_")[0] for k in model if k.startswith("m") and "_weight" in k})
    predict = Ensemble(tuple(
        Network([model[f"{m}_weight{i}"] for i in range(sum(k.startswith(f"{m}_") for k in model))])
        for m in members
    ))  # fmt: skip
    pca = PcaFit(model["mean"], model["basis"], float(model["scale"]))
    features = FeatureFit(bool(model["deskew"]), pca)
    note = f"fit of {model['when']} reused"
    return _KeptFit(features, predict, scores, note, int(model["sampled"]), int(model["token"]))


def _score_new(
    data: DatasetImages,
    key: str,
    fit: _KeptFit,
    progress: Callable[[int], None] | None,
) -> Scored:
    """Kept scores where the image and its label are as they were; the rest scored now."""
    kept = fit.scores
    n = len(data)
    suggested = np.zeros(n, np.int64)
    score = np.zeros(n, np.float64)
    sampled = np.zeros(n, bool)
    at = find_ids(data.ids, kept["ids"].astype(np.int64))
    same = at >= 0
    same[same] = (data.labels[at[same]] == kept["labels"][same]) & (
        data.digests[at[same]] == kept["digests"][same]
    )
    suggested[at[same]] = kept["suggested"][same]
    score[at[same]] = kept["score"][same]
    sampled[at[same]] = kept["sampled"][same]
    todo = np.ones(n, bool)
    todo[at[same]] = False
    score_images(data, todo, fit.features, fit.predict, suggested, score, progress)
    suggested[todo] = _values(data)[suggested[todo]]  # positions among the labels: values
    if progress is not None:
        progress(n - int(todo.sum()))
    scores = StreamedScores(suggested, score, sampled, fit.features, fit.predict)
    reuse = f"{fit.note}; {int(todo.sum()):,} new images scored, {n - int(todo.sum()):,} reused"
    if todo.any():  # the scores kept grow by the new ones; the fit and its pool stay
        assert data.session is not None
        blobs = {"ids": pack_ids(data.ids), "scores": _packed_scores(data, scores, fit.token)}
        if not write_state(data.session, dataset_id(data.session, data.name), CHECK, key,
                           blobs, replace_all=False):  # fmt: skip
            reuse += "; not kept (the catalog refused the write)"
    return Scored(scores, reuse, fit.fitted_on)


def _packed_scores(data: DatasetImages, scores: StreamedScores, token: int) -> bytes:
    return pack(labels=data.labels.astype(np.int64), suggested=scores.suggested.astype(np.int64),
                score=scores.score, sampled=scores.sampled, token=np.array(token),
                digests=data.digests)  # fmt: skip
