"""Label errors: images whose label is probably wrong, judged out of sample
(see :mod:`catalog.audit.label_model`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages
from catalog.audit.kept_labels import label_scores
from catalog.audit.label_model import DEFAULT_METHOD, Method

#: Label-error suspects reported as warnings: score, p(suggested) - p(given), at
#: or above this.
LABEL_ERROR_SCORE = 0.8
#: The default scorer: the best ranking of planted flips within the plain audit's time
#: (docs/audit-methods.md); ``audit --method`` and ``--thorough`` choose another.
LABEL_ERROR_METHOD: Method = DEFAULT_METHOD
#: How many suspects the report lists for review, whatever their score.
LABEL_ERROR_LIST = 100


def run(context: AuditContext) -> Outcome:
    whole = context.whole
    tick = context.ticker("label-errors", len(whole.ids))
    return check_label_errors(whole, context.seed, tick, context.splits, full=context.full,
                              method=context.method)  # fmt: skip


def check_label_errors(
    data: DatasetImages,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    splits: Sequence[str] = (),
    *,
    full: bool = False,
    method: Method = LABEL_ERROR_METHOD,
) -> Outcome:
    """Rank likely label errors; report those of ``splits`` (default all).

    Every image is judged out of sample (:mod:`catalog.audit.label_scoring`): the
    model is fitted on a stratified sample of at most ``SAMPLE`` train images, judged
    by k-fold, and scores every other image, so ``data`` should hold the whole dataset
    even when only some splits are audited. Unless ``full``, the fit and scores an
    earlier audit kept are built on where that is sound (:mod:`catalog.audit.kept_labels`).
    """
    if (data.labels < 0).any():  # images without a label are neither judged nor judges
        data = data.subset(data.labels >= 0)
    if data.shape is None or len(data) < 50 or len(np.unique(data.labels)) < 2:
        return [], {"skipped": "too few images or labels to judge"}
    # Fitted on a stratified sample of train, every image scored out of sample, streamed.
    scored = label_scores(data, method, seed, progress, full=full)
    scores = scored.scores
    order = scores.ranked()
    # A blank or inverted image has no label to judge: odd-images reports it.
    judged = ~(data.ink.blank | data.ink.inverted)
    if splits:
        judged &= np.isin(data.splits, list(splits))
    order = order[judged[order]]
    # An image a person has looked at since is not flagged again; say how many.
    reviewed = data.reviewed[order] & (scores.score[order] >= LABEL_ERROR_SCORE)
    order = order[~data.reviewed[order]]
    suspects = order[scores.score[order] >= LABEL_ERROR_SCORE]
    findings = [
        Finding("label-errors", "likely-label-error", "warning",
                f"{data.ref(i).split}:{data.ref(i).index} is labelled {data.labels[i]} but looks "
                f"like {scores.suggested[i]} (score {scores.score[i]:.2f})",
                [data.ref(i)],
                {"given": int(data.labels[i]), "suggested": int(scores.suggested[i]),
                 "score": round(float(scores.score[i]), 4)})
        for i in suspects.tolist()
    ]  # fmt: skip
    ranking: dict[str, list[dict[str, Any]]] = {}
    for split in sorted(set(data.splits[order].tolist()), key=lambda s: (s == "train", s)):
        top = order[data.splits[order] == split][:LABEL_ERROR_LIST]
        ranking[split] = [
            {**asdict(data.ref(i)), "suggested": int(scores.suggested[i]),
             "score": round(float(scores.score[i]), 4)}
            for i in top.tolist()
        ]  # fmt: skip
    summary = {
        "method": method,
        "fitted_on": scored.fitted_on,
        "reuse": scored.reuse,
        "threshold": LABEL_ERROR_SCORE,
        "suspects": len(suspects),
        "skipped_reviewed": int(reviewed.sum()),
        "ranking": ranking,
    }
    return findings, summary
