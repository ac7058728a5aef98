"""``mnist-catalog audit``: run the checks, print or write the report, exit 1 on errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from catalog.cli.options import JsonOpt, MemoryOpt, SeedOpt, SplitOpt, VersionOpt
from catalog.cli.output import echo_json, named_bars
from catalog.cli.state import open_catalog

if TYPE_CHECKING:  # typing only: --help imports no numpy
    from catalog.audit.label_model import Method


def audit(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset to audit (default: all).")
    ] = None,
    split: SplitOpt = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Run only these checks; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too, not only on errors.")
    ] = False,
    seed: SeedOpt = 0,
    tag_name: Annotated[
        str | None,
        typer.Option("--tag", help="Tag every image named in a finding, to review later."),
    ] = None,
    store: Annotated[
        bool,
        typer.Option(
            "--store/--no-store",
            help="Record the run in the catalog, for `serve` (--no-store: only read).",
        ),
    ] = True,
    memory: MemoryOpt = 1 << 30,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Search every image for near duplicates and fit the label model again, "
            "instead of building on what the last audit kept.",
        ),
    ] = False,
    version: VersionOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="Label-error scorer: deskew-mlp (default), mlp, knn, softmax, cnn or deskew-cnn.",
        ),
    ] = None,
    thorough: Annotated[
        bool,
        typer.Option(
            "--thorough",
            help="Rank label errors with a small convolutional network (several minutes; "
            'pip install "mnist-catalog[thorough]").',
        ),
    ] = False,
) -> None:
    """Audit datasets: identity, balance, duplicates, odd images, label errors, files.

    Exits 1 when a finding is an error (with --strict: a warning or an error).
    The label-error check skips images already relabelled, tagged reviewed or
    excluded, and says how many.
    """
    if thorough and method not in (None, "deskew-cnn"):
        msg = f"--thorough is --method deskew-cnn; it cannot be combined with --method {method}"
        raise typer.BadParameter(msg)
    scorer = cast("Method", "deskew-cnn" if thorough else (method or "deskew-mlp"))  # checked
    catalog = open_catalog(ctx)
    with named_bars("count", "elapsed") as on_progress:
        report = catalog.audit(
            dataset=dataset, splits=tuple(split or ()), checks=check or None, seed=seed,
            progress=on_progress, memory=memory, full=full, version=version,
            method=scorer,
        )  # fmt: skip
        if html_path is not None:
            html_path.write_text(catalog.audit_html(report), encoding="utf-8")
    if tag_name is not None:
        tagged = catalog.tag_findings(report, tag_name)
        typer.echo(f"{tagged.describe()} (tag {tag_name})", err=as_json)
    if store:
        catalog.record_audit(report)
    if as_json:
        echo_json(report.to_json())
    else:
        typer.echo(catalog.audit_text(report))
        if html_path is not None:
            typer.echo(f"\nWrote {html_path}")
    worst = report.worst
    if worst == "error" or (strict and worst == "warning"):
        raise typer.Exit(code=1)
