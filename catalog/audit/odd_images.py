"""Odd images: blank, inverted, wrong size, ink on the border, unusual ink mass or
centroid (robust z-scores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.features import InkMeasures
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages

#: Robust z-score beyond which ink mass or centroid is "unusual".
ROBUST_Z = 6.0


def run(context: AuditContext) -> Outcome:
    return check_odd_images(context.data)


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


def check_odd_images(data: DatasetImages) -> Outcome:
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
    if data.shape is None or not len(data):
        return findings, summary
    ink = data.ink  # streamed block by block, a few numbers per image
    blank, inverted = ink.blank, ink.inverted
    touching = (ink.border_inked > 0) & ~inverted & ~blank
    mass, cy, cx = ink.mass, ink.cy, ink.cx
    normal = ~(blank | inverted)
    mass_z = np.zeros(len(data))
    centre_z = np.zeros(len(data))
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
                        {"scores": _scores(code, positions, ink, mass_z, centre_z)})
            )  # fmt: skip
    return findings, summary


def _scores(
    code: str,
    positions: npt.NDArray[np.int64],
    ink: InkMeasures,
    mass_z: npt.NDArray[Any],
    centre_z: npt.NDArray[Any],
) -> list[float]:
    source = {
        "blank": ink.inked,
        "inverted": ink.border_mean,
        "touches-border": ink.border_inked,
        "unusual-ink-mass": mass_z,
        "off-centre": centre_z,
    }[code]
    return [round(float(v), 4) for v in source[positions]]
