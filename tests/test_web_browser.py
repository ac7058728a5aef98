"""A real browser on the web view: overview -> grid -> image, then three suspects reviewed
with the keyboard; the decisions must be in the catalog."""

from __future__ import annotations

import pytest
from browser import required, served

from catalog import Catalog

pytestmark = pytest.mark.slow

REASON = required()  # None, a reason to skip, or a failure where CI promised a browser


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_browse_then_review_three_suspects_with_the_keyboard(
    catalog: Catalog, web_catalog: Catalog
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from catalog.web.app import create_app
    from catalog.web.security import Access

    assert web_catalog is catalog  # ingested and audited (tests/conftest.py)
    access = Access()
    with served(create_app(catalog, access=access)) as (server, driver):
        wait = WebDriverWait(driver, 20)
        driver.get(f"{server.url}/?token={access.token}")
        assert "token=" not in driver.current_url  # kept in a cookie instead
        driver.find_element(
            By.CSS_SELECTOR, 'a[href="/grid?dataset=digits&split=test&label=3"]'
        ).click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".grid .cell")))
        cells = driver.find_elements(By.CSS_SELECTOR, ".grid .cell")
        assert len(cells) == 10
        cells[0].click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".image-page")))
        assert "test:" in driver.find_element(By.TAG_NAME, "h1").text
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".neighbours img")) == 12)

        driver.get(f"{server.url}/review?split=test")
        first = _suspect(driver)
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("r")  # relabel to the suggestion; the first key asks for a name
        wait.until(ec.alert_is_present())
        alert = driver.switch_to.alert
        alert.send_keys("rita")
        alert.accept()
        wait.until(lambda d: "Recorded" in d.find_element(By.ID, "status").text)
        assert driver.find_element(By.ID, "current").text == first[2]
        body.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: _suspect(d)[0] != first[0])
        second = _suspect(driver)
        driver.find_element(By.TAG_NAME, "body").send_keys("x")  # exclude
        wait.until(lambda d: not d.find_element(By.ID, "excluded").get_attribute("hidden"))
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: _suspect(d)[0] != second[0])
        third = _suspect(driver)
        driver.find_element(By.TAG_NAME, "body").send_keys("k")  # keep
        wait.until(lambda d: "reviewed" in d.find_element(By.ID, "tags").text)

    relabelled = catalog.history(f"test:{first[0]}")
    assert [(d.action, d.label, d.by) for d in relabelled] == [("relabel", int(first[2]), "rita")]
    assert [(d.action, d.by) for d in catalog.history(f"test:{second[0]}")] == [("exclude", "rita")]
    kept = catalog.history(f"test:{third[0]}")
    assert [(d.action, d.tag, d.by) for d in kept] == [("tag", "reviewed", "rita")]


def _suspect(driver: object) -> tuple[str, str, str]:
    """(index, given label, suggested label) of the suspect on the page."""
    from selenium.webdriver.common.by import By

    review = driver.find_element(By.ID, "review")  # type: ignore[attr-defined]
    given = driver.find_element(By.CSS_SELECTOR, ".claim .given").text  # type: ignore[attr-defined]
    return review.get_attribute("data-index"), given, review.get_attribute("data-suggested")
