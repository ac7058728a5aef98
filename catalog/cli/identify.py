"""``mnist-catalog identify``: which genuine images a dataset holds, stored per image."""

from __future__ import annotations

from typing import Annotated

import typer

from catalog.cli.options import DatasetOpt, JsonOpt, VersionOpt
from catalog.cli.output import echo_json, progress_bar
from catalog.cli.state import open_catalog


def identify(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    against: Annotated[
        str,
        typer.Option(
            "--against",
            help="Reference: mnist (the registry shipped with the package) or a dataset's name.",
        ),
    ] = "mnist",
    images: Annotated[
        bool, typer.Option("--images", help="With --json: every image's identity too.")
    ] = False,
    as_json: JsonOpt = False,
    version: VersionOpt = None,
) -> None:
    """Say which reference image each image is: exact, lossy (with its error) or none.

    The result is stored per image (metadata keys match, canonical_dataset,
    canonical_split, canonical_index, max_error), replacing the previous one:
    `query --where canonical_split=test` selects by it, and export manifests carry it.
    """
    catalog = open_catalog(ctx)
    total = catalog.select(dataset=dataset, version=version).count()
    with progress_bar(f"Identifying against {against}", total) as advance:
        result = catalog.identify(dataset, against=against, progress=advance, version=version)
    from catalog.identity.leaks import describe_leak, find_leakage

    leaks = find_leakage([result])
    if as_json:
        echo_json(result.to_json(images=images) | {"leakage": [vars(leak) for leak in leaks]})
        return
    counts = result.counts()
    typer.echo(
        f"{result.dataset} against {result.reference}: {len(result):,} images, "
        f"{counts['exact']:,} exact, {counts['lossy']:,} lossy, {counts['none']:,} none"
    )
    for line in result.summary():
        typer.echo(f"  {line}")
    for leak in leaks:
        typer.echo(f"  leakage: {describe_leak(leak)}")
    typer.echo("Stored per image: select with --where canonical_split=SPLIT or --where match=KIND")
