"""The web view: ``mnist-catalog serve`` (the ``serve`` extra: Starlette, uvicorn, Jinja2).

:func:`catalog.web.app.create_app` builds the application; this package's
``__init__`` imports nothing heavy, so the command line can check the extra first.
"""

from __future__ import annotations

from importlib.util import find_spec as find_spec  # a module attribute, so tests can stub it

#: The packages of the ``serve`` extra.
SERVE_PACKAGES = ("starlette", "uvicorn", "jinja2")


def check_serve_extra() -> None:
    """Raise a one-line :class:`~catalog.errors.CatalogError` if the ``serve`` extra is missing."""
    missing = [name for name in SERVE_PACKAGES if find_spec(name) is None]
    if missing:
        from catalog.errors import MissingExtraError

        msg = (
            f"The web view needs {', '.join(missing)}, "
            f"which {'is' if len(missing) == 1 else 'are'} not installed: "
            'pip install "mnist-catalog[serve]"'
        )
        raise MissingExtraError(msg)
