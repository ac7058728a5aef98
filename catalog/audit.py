"""Audit: what is really in a dataset.

Seven checks, each producing :class:`Finding` s with a severity:

``identity``
    Sources against the genuine MNIST/Fashion-MNIST/KMNIST fingerprints; split
    sizes, per-label counts and content digests against the known ones when
    the dataset claims to be one of them.
``balance``
    Counts per split x label, smallest/largest class ratio, missing labels.
``exact-duplicates``
    Byte-identical images within and across splits (leakage); groups whose
    members disagree on the label are flagged separately.
``near-duplicates``
    Pairs that are nearly identical (see :mod:`catalog.near_duplicates`).
``odd-images``
    Blank, inverted, wrong size, ink on the border, unusual ink mass or
    centroid (robust z-scores).
``label-errors``
    Images whose label is probably wrong, judged out of sample
    (see :mod:`catalog.label_errors`).
``files``
    Exported files: missing, changed, unreadable, decoding to other pixels,
    and files in export folders the catalog does not know.

Severities: ``info`` (worth knowing), ``warning`` (a problem to look at),
``error`` (the data or the files are not what they should be).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db import Dataset, Export, ExportedFile, Image, Source
from catalog.errors import SelectionError
from catalog.fingerprints import KNOWN_DATASETS, known_split
from catalog.label_errors import Method
from catalog.query import Selection, dataset_id

CHECKS = (
    "identity",
    "balance",
    "exact-duplicates",
    "near-duplicates",
    "odd-images",
    "label-errors",
    "files",
)
SEVERITIES = ("info", "warning", "error")
#: JSON report format version; bumped when keys change meaning.
REPORT_VERSION = 1

#: A class smaller than this fraction of the largest one is a warning.
BALANCE_WARNING_RATIO = 0.5
#: Robust z-score beyond which ink mass or centroid is "unusual".
ROBUST_Z = 6.0
#: Fraction of pixels >= 128 under which an image counts as (nearly) blank.
#: Genuine MNIST's emptiest digit has 1.9% of its pixels inked.
BLANK_INK_FRACTION = 0.005
#: Mean border brightness above which the background is light (inverted).
#: Genuine MNIST's brightest border averages 8.3.
INVERTED_BORDER_MEAN = 128.0
#: Label-error suspects reported as warnings: score, p(suggested) - p(given), at
#: or above this.
LABEL_ERROR_SCORE = 0.8
#: The scorer that found the most planted flips (docs/audit-methods.md).
LABEL_ERROR_METHOD: Method = "mlp"
#: How many suspects the report lists for review, whatever their score.
LABEL_ERROR_LIST = 100

Progress = Callable[[str, int, int], None]  # (check, done, total)
LIST_FILES = {"manifest.csv"}


@dataclass(frozen=True)
class ImageRef:
    """An image a finding is about."""

    dataset: str
    split: str
    index: int
    label: int
    sha256: str


@dataclass
class Finding:
    check: str
    code: str
    severity: str
    message: str
    images: list[ImageRef] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditReport:
    """Everything an audit found. ``to_json`` gives the documented JSON shape."""

    datasets: list[str]
    splits: list[str]
    checks: list[str]
    generated_at: str
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # per check: numbers
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            out[finding.severity] += 1
        return out

    @property
    def worst(self) -> str | None:
        present = {f.severity for f in self.findings}
        for severity in reversed(SEVERITIES):
            if severity in present:
                return severity
        return None

    def problems(self, at_least: str = "warning") -> list[Finding]:
        floor = SEVERITIES.index(at_least)
        return [f for f in self.findings if SEVERITIES.index(f.severity) >= floor]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "generated_at": self.generated_at,
            "datasets": self.datasets,
            "splits": self.splits,
            "checks": self.checks,
            "counts": self.counts(),
            "summary": self.summary,
            "seconds": self.seconds,
            "findings": [asdict(f) for f in self.findings],
        }


@dataclass
class DatasetImages:
    """All pixels of the audited images of one dataset, in (split, index) order."""

    name: str
    ids: npt.NDArray[np.int64]
    splits: npt.NDArray[np.str_]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    sha256: npt.NDArray[np.str_]
    pixels: npt.NDArray[np.uint8] | None  # None when sizes differ (see odd-images)
    shapes: npt.NDArray[np.int64]  # (n, 2)

    def ref(self, i: int) -> ImageRef:
        return ImageRef(
            self.name, str(self.splits[i]), int(self.indices[i]), int(self.labels[i]),
            str(self.sha256[i]),
        )  # fmt: skip

    def refs(self, positions: Iterable[int]) -> list[ImageRef]:
        return [self.ref(int(i)) for i in positions]


def load_images(session: Session, name: str, splits: Sequence[str]) -> DatasetImages:
    """Read one dataset's images (all, or of ``splits``) into numpy blocks."""
    ids, split_names, indices, labels, digests, shapes = [], [], [], [], [], []
    blocks: list[npt.NDArray[np.uint8]] = []
    query = (
        select(Image.id, Image.split, Image.index, Image.label, Image.sha256, Image.height,
               Image.width, Image.pixels)
        .where(Image.dataset_id == dataset_id(session, name))
        .order_by(Image.split, Image.index)
    )  # fmt: skip
    if splits:
        query = query.where(Image.split.in_(splits))
    uniform = True
    first_shape: tuple[int, int] | None = None
    for rows in session.execute(query.execution_options(yield_per=8192)).partitions(8192):
        for row in rows:
            ids.append(row[0])
            split_names.append(row[1])
            indices.append(row[2])
            labels.append(row[3])
            digests.append(row[4])
            shapes.append((row[5], row[6]))
            first_shape = first_shape or (row[5], row[6])
            if (row[5], row[6]) != first_shape or len(row[7]) != row[5] * row[6]:
                uniform = False
        if uniform and first_shape is not None:
            data = b"".join(row[7] for row in rows)
            blocks.append(np.frombuffer(data, dtype=np.uint8).reshape(len(rows), *first_shape))
    pixels: npt.NDArray[np.uint8] | None
    if not uniform:
        pixels = None
    elif blocks:
        pixels = np.concatenate(blocks)
    else:
        pixels = np.zeros((0, 28, 28), dtype=np.uint8)
    return DatasetImages(
        name=name,
        ids=np.asarray(ids, dtype=np.int64),
        splits=np.asarray(split_names, dtype=np.str_),
        indices=np.asarray(indices, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int64),
        sha256=np.asarray(digests, dtype=np.str_),
        pixels=pixels,
        shapes=np.asarray(shapes, dtype=np.int64).reshape(-1, 2),
    )


# --- identity -------------------------------------------------------------------


def check_identity(session: Session, data: DatasetImages) -> list[Finding]:
    """Sources against the known fingerprints, and splits against the known sizes."""
    findings: list[Finding] = []
    ds = dataset_id(session, data.name)
    sources = session.scalars(select(Source).where(Source.dataset_id == ds)).all()
    genuine = sorted({s.genuine.split("/")[0] for s in sources if s.genuine})
    claimed = set(genuine)
    if data.name in KNOWN_DATASETS:
        claimed.add(data.name)
    unknown_sources = [s.uri for s in sources if not s.genuine]
    if genuine and not unknown_sources:
        title = ", ".join(KNOWN_DATASETS[g].title for g in genuine)
        findings.append(
            Finding("identity", "genuine-sources", "info",
                    f"{data.name}: every source file is a genuine {title} file",
                    details={"sources": [s.uri for s in sources]})
        )  # fmt: skip
    for claim in sorted(claimed):
        findings += _compare_to_known(data, claim)
    if not claimed:
        findings.append(
            Finding("identity", "unknown-dataset", "info",
                    f"{data.name}: not a known dataset (no source matches a genuine "
                    "MNIST, Fashion-MNIST or KMNIST file)",
                    details={"sources": [s.uri for s in sources]})
        )  # fmt: skip
    return findings


def _compare_to_known(data: DatasetImages, claim: str) -> list[Finding]:
    findings: list[Finding] = []
    for split in sorted(set(data.splits.tolist())):
        known = known_split(claim, split)
        if known is None:
            continue
        mask = data.splits == split
        size = int(mask.sum())
        counts = np.bincount(data.labels[mask], minlength=10)[:10].tolist()
        problems = []
        if size != known.size:
            problems.append(f"{size:,} images where {known.size:,} are expected")
        if tuple(counts) != known.label_counts:
            problems.append(f"per-label counts {counts} differ from {list(known.label_counts)}")
        content = None
        if known.pixels_sha256 and data.pixels is not None and not problems:
            order = np.argsort(data.indices[mask], kind="stable")
            block = np.ascontiguousarray(data.pixels[mask][order])
            pixels_ok = hashlib.sha256(block.tobytes()).hexdigest() == known.pixels_sha256
            labels_bytes = data.labels[mask][order].astype(np.uint8).tobytes()
            labels_ok = hashlib.sha256(labels_bytes).hexdigest() == known.labels_sha256
            content = pixels_ok and labels_ok
            if not pixels_ok:
                problems.append("pixels differ from the genuine ones")
            if not labels_ok:
                problems.append("labels differ from the genuine ones")
        title = KNOWN_DATASETS[claim].title
        if problems:
            findings.append(
                Finding("identity", "differs-from-known", "warning",
                        f"{data.name} {split}: claims to be {title} but " + "; ".join(problems),
                        details={"split": split, "size": size, "label_counts": counts,
                                 "expected_size": known.size,
                                 "expected_label_counts": list(known.label_counts)})
            )  # fmt: skip
        else:
            verified = " (pixels and labels identical)" if content else ""
            findings.append(
                Finding("identity", "matches-known", "info",
                        f"{data.name} {split}: size and per-label counts are {title}'s{verified}",
                        details={"split": split, "size": size, "content_identical": content})
            )  # fmt: skip
    return findings


# --- balance --------------------------------------------------------------------


def check_balance(data: DatasetImages) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    table: dict[str, list[int]] = {}
    for split in sorted(set(data.splits.tolist())):
        counts = np.bincount(data.labels[data.splits == split], minlength=10)[:10]
        table[split] = counts.tolist()
        present = counts[counts > 0]
        ratio = float(present.min() / present.max()) if present.size else 0.0
        missing = [label for label in range(10) if counts[label] == 0]
        if missing:
            findings.append(
                Finding("balance", "missing-labels", "warning",
                        f"{data.name} {split}: no images of label(s) {', '.join(map(str, missing))}",
                        details={"split": split, "missing": missing})
            )  # fmt: skip
        smallest, largest = (
            int(np.argmin(np.where(counts > 0, counts, counts.max() + 1))),
            int(np.argmax(counts)),
        )
        severity = "warning" if ratio < BALANCE_WARNING_RATIO else "info"
        findings.append(
            Finding("balance", "class-ratio", severity,
                    f"{data.name} {split}: smallest/largest class ratio {ratio:.2f} "
                    f"(label {smallest}: {counts[smallest]:,}, label {largest}: {counts[largest]:,})",
                    details={"split": split, "ratio": round(ratio, 4), "counts": counts.tolist()})
        )  # fmt: skip
    return findings, {"counts": table}


# --- exact duplicates -------------------------------------------------------------


def check_exact_duplicates(data: DatasetImages) -> tuple[list[Finding], dict[str, Any]]:
    """Groups of byte-identical images (same pixel digest)."""
    findings: list[Finding] = []
    _, inverse, counts = np.unique(data.sha256, return_inverse=True, return_counts=True)
    groups = np.flatnonzero(counts > 1)
    within = across = conflicting = 0
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for group in groups.tolist():
        members = order[starts[group] : starts[group + 1]]
        splits = sorted(set(data.splits[members].tolist()))
        labels = sorted(set(data.labels[members].tolist()))
        refs = data.refs(members)
        where = "across splits " + "/".join(splits) if len(splits) > 1 else f"within {splits[0]}"
        if len(splits) > 1:
            across += 1
            code, severity = "leak-across-splits", "error"
        else:
            within += 1
            code, severity = "duplicate-within-split", "warning"
        findings.append(
            Finding("exact-duplicates", code, severity,
                    f"{len(members)} identical images {where}: "
                    + ", ".join(f"{r.split}:{r.index}" for r in refs[:6])
                    + (" ..." if len(refs) > 6 else ""),
                    refs, {"splits": splits, "labels": labels})
        )  # fmt: skip
        if len(labels) > 1:
            conflicting += 1
            findings.append(
                Finding("exact-duplicates", "label-conflict", "error",
                        f"{len(members)} identical images disagree on the label "
                        f"({', '.join(f'{r.split}:{r.index}={r.label}' for r in refs[:6])})",
                        refs, {"labels": labels})
            )  # fmt: skip
    summary = {
        "groups": len(groups),
        "within_split_groups": within,
        "across_split_groups": across,
        "label_conflict_groups": conflicting,
        "images_in_groups": int(counts[groups].sum()),
    }
    return findings, summary


# --- near duplicates ------------------------------------------------------------


def check_near_duplicates(
    data: DatasetImages, progress: Callable[[int], None] | None = None
) -> tuple[list[Finding], dict[str, Any]]:
    from catalog.near_duplicates import DEFAULT_THRESHOLD, find_near_duplicates

    if data.pixels is None or len(data.pixels) < 2:
        return [], {
            "pairs": 0,
            "skipped": "images of different sizes" if data.pixels is None else None,
        }
    # One representative per exact-duplicate group: those are reported already.
    _, first = np.unique(data.sha256, return_index=True)
    first = np.sort(first)
    pairs = find_near_duplicates(data.pixels[first], progress=progress)
    findings: list[Finding] = []
    across = 0
    for pair in pairs:
        a, b = int(first[pair.first]), int(first[pair.second])
        refs = data.refs([a, b])
        cross = refs[0].split != refs[1].split
        across += cross
        conflict = refs[0].label != refs[1].label
        findings.append(
            Finding("near-duplicates", "near-duplicate-across-splits" if cross else "near-duplicate",
                    "warning",
                    f"{refs[0].split}:{refs[0].index} and {refs[1].split}:{refs[1].index} are "
                    f"nearly identical (distance {pair.distance:.1f})"
                    + (f"; labels differ ({refs[0].label} vs {refs[1].label})" if conflict else ""),
                    refs, {"distance": round(float(pair.distance), 3), "label_conflict": conflict})
        )  # fmt: skip
    return findings, {"pairs": len(pairs), "across_splits": across, "threshold": DEFAULT_THRESHOLD}


# --- odd images -------------------------------------------------------------------


def robust_z(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(x - median) / (1.4826 * MAD); zero where the MAD is zero.

    >>> robust_z(np.array([1.0, 2.0, 3.0, 100.0])).round(2).tolist()
    [-1.01, -0.34, 0.34, 65.76]
    """
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    if mad == 0:
        return np.zeros_like(values)
    z: npt.NDArray[np.float64] = (values - median) / mad
    return z


def _blank_and_inverted(
    pixels: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Inked fraction, border pixels, and the blank and inverted masks."""
    inked = (pixels >= 128).mean(axis=(1, 2))
    border = np.concatenate(
        [pixels[:, 0, :], pixels[:, -1, :], pixels[:, 1:-1, 0], pixels[:, 1:-1, -1]], axis=1
    ).astype(np.float32)
    inverted = border.mean(axis=1) > INVERTED_BORDER_MEAN
    blank = (inked < BLANK_INK_FRACTION) & ~inverted
    return inked, border, blank, inverted


def check_odd_images(data: DatasetImages) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    expected = (
        tuple(np.median(data.shapes, axis=0).astype(int).tolist()) if len(data.shapes) else (28, 28)
    )
    wrong = np.flatnonzero((data.shapes != np.asarray(expected)).any(axis=1))
    if wrong.size:
        findings.append(
            Finding("odd-images", "wrong-size", "error",
                    f"{wrong.size} image(s) are not {expected[0]}x{expected[1]} like the rest",
                    data.refs(wrong), {"expected": list(expected)})
        )  # fmt: skip
    summary: dict[str, Any] = {"wrong_size": int(wrong.size)}
    if data.pixels is None or not len(data.pixels):
        return findings, summary
    pixels = data.pixels.astype(np.float32)
    inked, border, blank, inverted = _blank_and_inverted(data.pixels)
    touching = (border >= 128).any(axis=1) & ~inverted & ~blank
    mass = pixels.sum(axis=(1, 2)) / 255.0
    ys, xs = np.mgrid[0 : pixels.shape[1], 0 : pixels.shape[2]]
    with np.errstate(invalid="ignore", divide="ignore"):
        total = pixels.sum(axis=(1, 2))
        cy = (pixels * ys).sum(axis=(1, 2)) / total
        cx = (pixels * xs).sum(axis=(1, 2)) / total
    normal = ~(blank | inverted)
    mass_z = np.zeros(len(pixels))
    centre_z = np.zeros(len(pixels))
    if normal.sum() > 10:
        mass_z[normal] = robust_z(mass[normal].astype(np.float64))
        centre_z[normal] = np.maximum(
            np.abs(robust_z(cy[normal].astype(np.float64))),
            np.abs(robust_z(cx[normal].astype(np.float64))),
        )
    unusual_mass = normal & (np.abs(mass_z) > ROBUST_Z)
    off_centre = normal & (centre_z > ROBUST_Z)
    groups = [
        ("blank", "warning", blank, "blank or nearly blank (under 0.5% of pixels inked)"),
        ("inverted", "warning", inverted, "light background (inverted: dark ink on white)"),
        ("touches-border", "info", touching, "ink on the outermost pixel rows or columns"),
        ("unusual-ink-mass", "info", unusual_mass, f"ink mass robust |z| > {ROBUST_Z:g}"),
        ("off-centre", "info", off_centre, f"centroid robust |z| > {ROBUST_Z:g}"),
    ]
    for code, severity, mask, what in groups:
        positions = np.flatnonzero(mask)
        summary[code.replace("-", "_")] = int(positions.size)
        if positions.size:
            findings.append(
                Finding("odd-images", code, severity,
                        f"{data.name}: {positions.size} image(s) {what}",
                        data.refs(positions),
                        {"scores": _scores(code, positions, inked, border, mass_z, centre_z)})
            )  # fmt: skip
    return findings, summary


def _scores(
    code: str,
    positions: npt.NDArray[np.int64],
    inked: npt.NDArray[Any],
    border: npt.NDArray[Any],
    mass_z: npt.NDArray[Any],
    centre_z: npt.NDArray[Any],
) -> list[float]:
    source = {
        "blank": inked,
        "inverted": border.mean(axis=1),
        "touches-border": (border >= 128).sum(axis=1),
        "unusual-ink-mass": mass_z,
        "off-centre": centre_z,
    }[code]
    return [round(float(v), 4) for v in source[positions]]


# --- label errors -----------------------------------------------------------------


def check_label_errors(
    data: DatasetImages,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    splits: Sequence[str] = (),
) -> tuple[list[Finding], dict[str, Any]]:
    """Rank likely label errors; report those of ``splits`` (default all).

    Every image is judged out of sample: images outside the train split by a
    model fitted on the whole train split, train images by k-fold, so ``data``
    should hold the whole dataset even when only some splits are audited.
    """
    from catalog.label_errors import rank_label_errors

    if data.pixels is None or len(data.pixels) < 50 or len(set(data.labels.tolist())) < 2:
        return [], {"skipped": "too few images or labels to judge"}
    is_test = data.splits != "train"
    if not (~is_test).any():
        is_test = np.zeros(len(data.labels), dtype=bool)  # no train split: k-fold over all
    scores = rank_label_errors(
        data.pixels, data.labels, is_test, method=LABEL_ERROR_METHOD, seed=seed, progress=progress
    )
    order = scores.ranked()
    # A blank or inverted image has no label to judge: odd-images reports it.
    _, _, blank, inverted = _blank_and_inverted(data.pixels)
    judged = ~(blank | inverted)
    if splits:
        judged &= np.isin(data.splits, list(splits))
    order = order[judged[order]]
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
        "method": LABEL_ERROR_METHOD,
        "threshold": LABEL_ERROR_SCORE,
        "suspects": len(suspects),
        "ranking": ranking,
    }
    return findings, summary


# --- files on disk ------------------------------------------------------------------

#: Exported-file formats of files that hold many images (catalog.export.container).
CONTAINER_FILES = ("idx", "npz", "parquet", "tar")


def check_files(
    session: Session, dataset_ids: list[int], progress: Callable[[int], None] | None = None
) -> tuple[list[Finding], dict[str, Any]]:
    """Recorded exported files against the disk, and unknown files in export folders."""
    query = (
        select(ExportedFile.path, ExportedFile.sha256, ExportedFile.format, Dataset.name,
               Image.split, Image.index, Image.label, Image.sha256, Image.id)
        .join(Image, Image.id == ExportedFile.image_id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.dataset_id.in_(dataset_ids))
        .order_by(ExportedFile.path)
    )  # fmt: skip
    problems: dict[str, list[tuple[ImageRef, str, str]]] = {
        "missing": [], "changed": [], "unreadable": [], "pixels-differ": [],
        "container-changed": [],
    }  # fmt: skip
    known: set[str] = set()
    checked = 0
    for rows in session.execute(query.execution_options(yield_per=4096)).partitions(4096):
        for row in rows:
            path, digest, fmt = row[0], row[1], row[2]
            known.add(path)
            ref = ImageRef(row[3], row[4], row[5], row[6], row[7])
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                problems["missing"].append((ref, path, "no such file"))
                continue
            except OSError as exc:
                problems["unreadable"].append((ref, path, exc.strerror or str(exc)))
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                continue
            if fmt in CONTAINER_FILES:
                # A shard or IDX file holds many images (manifest.csv lists them):
                # any change to its bytes changes what training reads.
                reason = f"{fmt} file's digest differs from the one recorded"
                problems["container-changed"].append((ref, path, reason))
                continue
            problems["changed"].append((ref, path, "digest differs from the one recorded"))
            if fmt == "jpg":
                continue  # lossy: its pixels never equalled the catalog's
            try:
                with PILImage.open(io.BytesIO(data)) as image:
                    decoded = np.asarray(image.convert("L"))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                problems["unreadable"].append((ref, path, f"cannot decode: {exc}"))
                continue
            # The catalog's pixels are read only for the (few) files that changed.
            height, width, pixels = session.execute(
                select(Image.height, Image.width, Image.pixels).where(Image.id == row[8])
            ).one()
            expected = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
            if decoded.shape != expected.shape or not np.array_equal(decoded, expected):
                problems["pixels-differ"].append((ref, path, "decodes to different pixels"))
        checked += len(rows)
        if progress is not None:
            progress(len(rows))
    roots = session.scalars(
        select(Export.root)
        .where(
            Export.id.in_(
                select(ExportedFile.export_id)
                .join(Image, Image.id == ExportedFile.image_id)
                .where(Image.dataset_id.in_(dataset_ids))
            )
        )
        .distinct()
    ).all()
    foreign = _unknown_files(roots, known)
    severity = {
        "missing": "error",
        "changed": "warning",
        "unreadable": "error",
        "pixels-differ": "error",
        "container-changed": "error",
    }
    what = {
        "missing": "exported file(s) are missing",
        "changed": "exported file(s) changed on disk (digest differs)",
        "unreadable": "exported file(s) cannot be read or decoded",
        "pixels-differ": "exported file(s) decode to pixels that differ from the catalog's",
        "container-changed": "exported container file(s) (IDX, npz, parquet, shards) changed on disk",
    }
    findings = [
        Finding("files", code, severity[code], f"{len(items)} {what[code]}: "
                + ", ".join(p for _, p, _ in items[:3]) + (" ..." if len(items) > 3 else ""),
                [ref for ref, _, _ in items],
                {"paths": [p for _, p, _ in items], "reasons": [r for _, _, r in items]})
        for code, items in problems.items()
        if items
    ]  # fmt: skip
    if foreign:
        findings.append(
            Finding("files", "unknown-file", "warning",
                    f"{len(foreign)} file(s) in export folders are not known to the catalog: "
                    + ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else ""),
                    details={"paths": foreign})
        )  # fmt: skip
    summary = {"recorded": checked, "export_folders": len(roots), "unknown": len(foreign)} | {
        code: len(items) for code, items in problems.items()
    }
    return findings, summary


def _unknown_files(roots: Sequence[str], known: set[str]) -> list[str]:
    """Image files under the export folders that no exported-file row names."""
    foreign: list[str] = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if path in known or _is_export_listing(root, folder, name):
                    continue
                foreign.append(path)
    return sorted(foreign)


def _is_export_listing(root: str, folder: str, name: str) -> bool:
    """Manifest and list files an export writes at its root."""
    if os.path.normpath(folder) != os.path.normpath(root):
        return False
    return name in LIST_FILES or name.endswith((".txt", ".lst", ".csv"))


# --- the audit ----------------------------------------------------------------------


def audit(
    session: Session,
    *,
    dataset: str | None = None,
    splits: Sequence[str] = (),
    checks: Sequence[str] = CHECKS,
    seed: int = 0,
    progress: Progress | None = None,
) -> AuditReport:
    """Run the ``checks`` on one dataset (or every dataset) and return the report.

    Parameters
    ----------
    session
        An open session (only read).
    dataset
        A dataset name; None audits every dataset in the catalog.
    splits
        Only these splits (default all).
    checks
        Any of :data:`CHECKS`.
    seed
        Seed of the label-error model's folds.
    progress
        Called as ``progress(check, done, total)``.
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        msg = f"Unknown check {unknown[0]!r}: expected any of {', '.join(CHECKS)}"
        raise SelectionError(msg)
    if dataset is not None:
        names = [
            session.scalar(select(Dataset.name).where(Dataset.id == dataset_id(session, dataset)))
        ]
    else:
        names = list(session.scalars(select(Dataset.name).order_by(Dataset.name)))
    report = AuditReport(
        datasets=[str(n) for n in names], splits=list(splits), checks=list(checks),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    for name in report.datasets:
        if splits:
            Selection(dataset=name, splits=tuple(splits))  # validates
            _check_splits(session, name, splits)
        _audit_one(session, name, splits, checks, seed, progress, report)
    if "files" in checks and report.datasets:
        started = datetime.now(UTC)
        ids = [dataset_id(session, n) for n in report.datasets]
        total = session.scalar(
            select(func.count()).select_from(ExportedFile)
            .join(Image, Image.id == ExportedFile.image_id).where(Image.dataset_id.in_(ids))
        ) or 0  # fmt: skip
        tick = _ticker(progress, "files", total)
        findings, summary = check_files(session, ids, tick)
        report.findings += findings
        report.summary["files"] = summary
        report.seconds["files"] = (datetime.now(UTC) - started).total_seconds()
    return report


def _check_splits(session: Session, name: str, splits: Sequence[str]) -> None:
    present = set(
        session.scalars(
            select(Image.split).where(Image.dataset_id == dataset_id(session, name)).distinct()
        )
    )
    missing = [s for s in splits if s not in present]
    if missing:
        msg = f"Unknown split {missing[0]!r}: expected one of {', '.join(sorted(present))}"
        raise SelectionError(msg)


def _ticker(progress: Progress | None, check: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        progress(check, min(done, total), total)

    progress(check, 0, total)
    return tick


def _audit_one(
    session: Session,
    name: str,
    splits: Sequence[str],
    checks: Sequence[str],
    seed: int,
    progress: Progress | None,
    report: AuditReport,
) -> None:
    started = datetime.now(UTC)
    data = load_images(session, name, splits)
    # Label errors are judged by models fitted on the whole dataset's train split.
    whole = data if not splits or "label-errors" not in checks else load_images(session, name, ())
    report.seconds[f"{name}:load"] = round((datetime.now(UTC) - started).total_seconds(), 3)
    n = len(data.ids)
    runs: list[tuple[str, Callable[[], tuple[list[Finding], dict[str, Any]]]]] = [
        ("identity", lambda: (check_identity(session, data), {})),
        ("balance", lambda: check_balance(data)),
        ("exact-duplicates", lambda: check_exact_duplicates(data)),
        ("odd-images", lambda: check_odd_images(data)),
        (
            "near-duplicates",
            lambda: check_near_duplicates(data, _ticker(progress, "near-duplicates", n)),
        ),
        (
            "label-errors",
            lambda: check_label_errors(
                whole, seed, _ticker(progress, "label-errors", len(whole.ids)), splits
            ),
        ),
    ]
    for check, run in runs:
        if check not in checks:
            continue
        started = datetime.now(UTC)
        findings, summary = run()
        report.findings += findings
        if summary:
            report.summary.setdefault(check, {})[name] = summary
        report.seconds[f"{name}:{check}"] = round((datetime.now(UTC) - started).total_seconds(), 3)
