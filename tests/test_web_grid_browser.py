"""A real browser on the grid: pick several digits (the corner box, shift-click, a box
dragged over them), tag them as one decision set, see the badges, undo the set and see
the badges gone; the catalog must agree at each step."""

from __future__ import annotations

import pytest
from browser import required, served

from catalog import Catalog

pytestmark = pytest.mark.slow

REASON = required()  # None, a reason to skip, or a failure where CI promised a browser


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_pick_tag_see_badges_and_undo_the_set(catalog: Catalog, web_catalog: Catalog) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from catalog.web.app import create_app
    from catalog.web.security import Access

    assert web_catalog is catalog  # ingested and audited (tests/conftest.py)
    access = Access()
    with served(create_app(catalog, access=access)) as (server, driver):
        wait = WebDriverWait(driver, 20)
        driver.get(f"{server.url}/?token={access.token}")
        driver.add_cookie({"name": "catalog_reviewer", "value": "grace", "path": "/"})
        driver.get(f"{server.url}/grid?dataset=digits&split=test&size=40")
        cells = driver.find_elements(By.CSS_SELECTOR, "#grid .cell")
        assert len(cells) == 40

        def picked() -> str:
            return str(driver.find_element(By.ID, "picked").text)

        cells[0].find_element(By.CSS_SELECTOR, ".pick").click()  # the corner box
        ActionChains(driver).key_down(Keys.SHIFT).click(cells[3]).key_up(Keys.SHIFT).perform()
        assert picked() == "4 selected"
        # a box dragged from cell 5 to cell 7 (the same row) picks 5, 6 and 7
        ActionChains(driver).move_to_element(cells[5]).click_and_hold().move_to_element(
            cells[6]
        ).move_to_element(cells[7]).release().perform()
        assert picked() == "7 selected"
        assert "/grid" in driver.current_url  # picking never opened an image page
        chosen = [
            c.get_attribute("data-ref")
            for c in cells
            if "picked" in (c.get_attribute("class") or "")
        ]
        assert chosen == [f"test:{i}" for i in (0, 1, 2, 3, 5, 6, 7)]

        driver.find_element(By.ID, "set-tag").send_keys("blurry")
        driver.find_element(By.CSS_SELECTOR, 'button[data-action="tag"]').click()
        wait.until(lambda d: "Recorded 7" in d.find_element(By.ID, "set-status").text)

        def tagged_cells() -> list[str]:
            return [
                c.find_element(By.XPATH, "..")
                .find_element(By.XPATH, "..")
                .get_attribute("data-ref")
                for c in driver.find_elements(By.CSS_SELECTOR, "#grid .badge.tagged")
                if c.text == "blurry"
            ]

        assert tagged_cells() == chosen
        assert sorted(f"test:{r.index}" for r in catalog.select(tag="blurry").rows()) == chosen
        records = catalog.decisions()
        assert {(r.by, r.set_id) for r in records} == {("grace", records[0].id)}

        driver.find_element(By.ID, "undo-set").click()  # the whole set, at once
        wait.until(lambda d: "7 untagged" in d.find_element(By.ID, "set-status").text)
        assert tagged_cells() == []
        assert catalog.select(tag="blurry").count() == 0
        assert [r.undoes for r in catalog.decisions()[7:]] == [r.id for r in records][::-1]

        driver.refresh()  # the page shows the catalog's state, not only the script's
        assert driver.find_elements(By.CSS_SELECTOR, "#grid .badge.tagged") == []
        driver.find_element(By.ID, "pick-all").click()
        assert picked() == "40 selected"
        driver.find_element(By.ID, "pick-none").click()
        assert picked() == "0 selected"
