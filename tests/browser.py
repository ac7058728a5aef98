"""Headless Chromium for the web view's browser test and screenshots (Selenium).

Debian's ``chromium`` and ``chromium-driver`` are found on the ``PATH``;
:func:`missing` says why a browser cannot be started, for a skip reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from io import BytesIO
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
)  # fmt: skip


def missing() -> str | None:
    """None when a headless browser can be started, else why not."""
    if find_spec("selenium") is None:
        return "selenium is not installed (pip install 'mnist-catalog[test]')"
    for name in ("chromium", "chromedriver"):
        if shutil.which(name) is None:
            return f"{name} is not on PATH (Debian: apt-get install chromium chromium-driver)"
    return None


def required() -> str | None:
    """:func:`missing`, except that where a browser was promised
    (``MNIST_CATALOG_REQUIRE_BROWSER=1``, as CI sets it) its absence fails the module."""
    reason = missing()
    if reason and os.environ.get("MNIST_CATALOG_REQUIRE_BROWSER") == "1":
        import pytest

        pytest.fail(reason, pytrace=False)
    return reason


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, with a profile of its own, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options = Options()
        options.binary_location = str(shutil.which("chromium"))
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(
            service=Service(str(shutil.which("chromedriver"))), options=options
        )
        try:
            yield driver
        finally:
            driver.quit()


@contextmanager
def served(app: Any, width: int = 1280, height: int = 900) -> Iterator[tuple[Any, Any]]:
    """The web ``app`` on a free port of 127.0.0.1 and a headless Chromium to drive it:
    ``(server, driver)``, both stopped afterwards."""
    from catalog.web.server import ThreadedServer

    with ThreadedServer(app) as server, chromium(width, height) as driver:
        yield server, driver


def screenshot(driver: Any, path: Path, width: int = 960) -> Path:
    """Save the visible page as a small PNG: scaled to ``width`` pixels, in a 256-colour
    palette (text stays crisp at a fraction of the size)."""
    from PIL import Image

    picture = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    if picture.width > width:
        picture = picture.resize(
            (width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS
        )
    picture.quantize(colors=256).save(path, format="PNG", optimize=True)
    return path
