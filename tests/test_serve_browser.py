"""The service's web page in a real browser: headless Chromium from Debian's packages, driven by
Selenium through chromium-driver. `.ci/run` installs both and sets FACEKEYPOINTS_BROWSER_TEST=1,
so there a missing browser fails the test instead of skipping it."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from matplotlib import cbook

from fakes import running

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
REQUIRED = os.environ.get("FACEKEYPOINTS_BROWSER_TEST") == "1"


def _browser_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def server() -> str:
    from facekeypoints.serve.app import create_app

    with running(create_app(workers=1)) as port:
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def browser():
    paths = _browser_paths()
    if paths is None:
        if REQUIRED:
            pytest.fail("FACEKEYPOINTS_BROWSER_TEST=1 but chromium or chromedriver is missing "
                        "(apt-get install chromium chromium-driver)")
        pytest.skip("no chromium + chromedriver here (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {script!r}; status: {status}")


def test_uploading_a_photo_draws_its_keypoints(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server)
    browser.find_element(By.ID, "file").send_keys(str(PHOTO))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    assert browser.execute_script("return document.getElementById('canvas').dataset.faces") == "1"
    assert browser.execute_script("return document.getElementById('canvas').dataset.points") == "15"
    # the keypoints are painted: yellow pixels exist on the canvas (the photo itself is grey-blue)
    yellow = browser.execute_script("""
        const c = document.getElementById('canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 230 && d[i+1] > 190 && d[i+2] < 60) n++;
        return n;""")
    assert yellow > 50
    status = browser.find_element(By.ID, "status").text
    assert "1 face(s), 15 points each" in status and "ms" in status
    browser.execute_script("document.body.dataset.done = ''")
    browser.find_element(By.CSS_SELECTOR, "input[value=ibug68]").click()  # switching re-sends the photo
    _wait(browser, "return document.body.dataset.done === 'yes'")
    assert browser.execute_script("return document.getElementById('canvas').dataset.points") == "68"
