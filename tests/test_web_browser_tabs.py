"""Two tabs of a real browser on one suspect: the second decision, made on a page that
did not see the first, is answered 409; the page says who decided what and shows it.
Then two quick keys apply in order (the queue), in the page and in the catalog."""

from __future__ import annotations

import pytest
from browser import required, served

from catalog import Catalog

pytestmark = pytest.mark.slow

REASON = required()  # None, a reason to skip, or a failure where CI promised a browser


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_two_tabs_deciding_one_image_the_second_sees_409(
    catalog: Catalog, web_catalog: Catalog
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from catalog.web.app import create_app
    from catalog.web.security import Access

    assert web_catalog is catalog  # ingested and audited (tests/conftest.py)
    access = Access()
    with served(create_app(catalog, access=access)) as (server, driver):
        wait = WebDriverWait(driver, 20)
        driver.get(f"{server.url}/?token={access.token}")
        driver.add_cookie({"name": "catalog_reviewer", "value": "rita", "path": "/"})
        review = f"{server.url}/review?split=test"
        driver.get(review)
        first = driver.current_window_handle
        index = driver.find_element(By.ID, "review").get_attribute("data-index")
        suggested = driver.find_element(By.ID, "review").get_attribute("data-suggested")
        driver.switch_to.new_window("tab")
        driver.get(review)
        second = driver.current_window_handle
        assert driver.find_element(By.ID, "review").get_attribute("data-index") == index

        driver.switch_to.window(first)
        driver.find_element(By.TAG_NAME, "body").send_keys("r")  # relabel to the suggestion
        wait.until(lambda d: "Recorded" in d.find_element(By.ID, "status").text)

        driver.switch_to.window(second)  # this tab still shows no decision
        driver.find_element(By.TAG_NAME, "body").send_keys("x")
        wait.until(lambda d: "changed since you saw it" in d.find_element(By.ID, "status").text)
        status = driver.find_element(By.ID, "status")
        assert "by rita at " in status.text
        assert "refused" in (status.get_attribute("class") or "")
        # The page shows what the catalog now holds: the other tab's relabel.
        wait.until(lambda d: d.find_element(By.ID, "current").text == suggested)
        assert driver.find_element(By.ID, "excluded").get_attribute("hidden")
        assert [d.action for d in catalog.history(f"test:{index}")] == ["relabel"]

        driver.find_element(By.TAG_NAME, "body").send_keys("x")  # now it saw it: recorded
        wait.until(lambda d: not d.find_element(By.ID, "excluded").get_attribute("hidden"))
        digits = ["2" if suggested != "2" else "7", "6" if suggested != "6" else "5"]
        driver.find_element(By.TAG_NAME, "body").send_keys("".join(digits))  # two quick keys
        wait.until(lambda d: len(catalog.history(f"test:{index}")) == 4)
        wait.until(lambda d: "Recorded" in d.find_element(By.ID, "status").text)
        assert driver.find_element(By.ID, "current").text == digits[-1]

    history = catalog.history(f"test:{index}")
    assert [(d.action, d.label) for d in history] == [
        ("relabel", int(suggested)), ("exclude", None),
        ("relabel", int(digits[0])), ("relabel", int(digits[1])),
    ]  # fmt: skip


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_a_read_only_review_says_so_and_asks_for_no_token(
    catalog: Catalog, web_catalog: Catalog
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from catalog.web.app import create_app
    from catalog.web.security import Access

    assert web_catalog is catalog  # ingested and audited (tests/conftest.py)
    app = create_app(catalog, access=Access(read_only=True))
    with served(app) as (server, driver):
        driver.get(f"{server.url}/review?split=test&token=anything")
        assert "token=" not in driver.current_url  # dropped; reading goes on
        driver.find_element(By.TAG_NAME, "body").send_keys("x")
        status = driver.find_element(By.ID, "status")
        WebDriverWait(driver, 20).until(lambda _: status.text)
        assert status.text == (
            "Read only: this server was started with --read-only, nothing can be decided here."
        )
    assert catalog.decisions() == []
