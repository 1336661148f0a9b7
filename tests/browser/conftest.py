"""Headless Chromium for the browser tests, and where their screenshots go.

The browser is Debian's ``chromium`` driven through Debian's ``chromedriver`` (never a
downloaded one: Selenium Manager is not used). Screenshots go to BADGES_BRIDGE_SCREENSHOTS_DIR
(default ``test-artifacts/screenshots/``). Without Chromium the tests skip, or fail when
BADGES_BRIDGE_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(os.environ.get("BADGES_BRIDGE_SCREENSHOTS_DIR") or "test-artifacts/screenshots")
#: Screenshots are numbered in the order they are taken, across the session.
SHOT_NUMBERS = itertools.count(1)
#: The browser window's width.
WIDTH = 1400


def _unavailable(reason: str) -> None:
    """Skip, or fail when services are required (CI)."""
    if os.environ.get("BADGES_BRIDGE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by the system chromedriver, with a fresh profile."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (requirements/test.txt)")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        _unavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="badges-bridge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser):
    """Save the whole page as ``NN-<name>.png`` in the screenshots folder; returns the path."""

    def take(name: str) -> Path:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(WIDTH, min(max(height + 120, 700), 6000))
        path = SCREENSHOTS / f"{next(SHOT_NUMBERS):02d}-{name}.png"
        browser.save_screenshot(str(path))
        browser.set_window_size(WIDTH, 1000)
        return path

    return take


def click_and_wait_for_the_next_page(driver, element, timeout: float = 30) -> None:
    """Click what loads a new page (a link, a form's button) and wait until the new page has loaded.

    The old page is marked with a property of its window, which the next document does not have.
    Element references are not used for this: once the old document is gone, chromedriver may
    answer for them with an error other than "stale element".
    """
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.badgesBridgeOldPage = true;")
    element.click()
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return !window.badgesBridgeOldPage && document.readyState === 'complete';")
    )
