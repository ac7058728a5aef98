"""``mnist-catalog serve``: browse the catalog and review the audit's suspects in a web page."""

from __future__ import annotations

from typing import Annotated

import typer

from catalog.cli.state import open_catalog


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)
    ] = 8000,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Browse only: no decisions can be recorded.")
    ] = False,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in a web browser.")
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="A host name the server answers to besides 127.0.0.1 and localhost "
            "(repeat for more; needed with --host 0.0.0.0: the Host check stays on).",
        ),
    ] = None,
) -> None:
    """Browse the catalog and review the audit's suspects in a web page.

    Prints the URL with a token (like Jupyter's): recording decisions needs it,
    reading does not. Needs the serve extra: pip install "mnist-catalog[serve]".
    """
    from catalog.web import check_serve_extra

    check_serve_extra()
    import uvicorn

    from catalog.web.app import create_app
    from catalog.web.security import Access
    from catalog.web.server import allowed_hosts, check_port, server_config, start_url

    check_port(host, port)
    hosts, warning = allowed_hosts(host, allow_host or [])
    if warning:
        typer.echo(f"Warning: {warning}", err=True)
    catalog = open_catalog(ctx)
    access = Access(read_only=read_only)
    catalog.warm_lookalikes([summary.name for summary in catalog.datasets(counts=False)])
    app = create_app(catalog, access=access, hosts=hosts)
    url = start_url(host, port, None if read_only else access.token)
    mode = "read-only" if read_only else "decisions need the token in this URL"
    typer.echo(f"Serving {catalog.engine.url.render_as_string(hide_password=True)} ({mode})")
    typer.echo(f"    {url}")
    typer.echo("Press Ctrl+C to stop.")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.Server(server_config(app, host, port)).run()
