"""What a person sees, in a real browser: headless Chromium (Debian's, driven by Selenium) opens
review apps through the local edge, signs in on the GitLab stand-in's form once for two MRs, and a
non-member sees the refusal page. Skipped, saying why, where Chromium is not installed; CI installs
it (.ci/run) and never skips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from local.edge import SIGNIN_HOST
from local.world import PEOPLE, PROJECT_PATH

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: apt-get install chromium chromium-driver (.ci/run does)")
    pytest.skip(
        "no Chromium here: apt-get install chromium chromium-driver to run the browser tests", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as seen  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.integration.test_sign_in import live_app  # noqa: E402

SHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", "/tmp/review-apps-browser"))


def browser(edge_port: int, review_domain: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",
        "--window-size=1000,700",
        f"--host-resolver-rules=MAP *.{review_domain} 127.0.0.1:{edge_port}, MAP {SIGNIN_HOST} 127.0.0.1:{edge_port}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    return driver


def sign_in(driver: webdriver.Chrome, username: str) -> None:
    wait = WebDriverWait(driver, 20)
    wait.until(seen.presence_of_element_located((By.ID, "user_login"))).send_keys(username)
    driver.find_element(By.ID, "user_password").send_keys(PEOPLE[username][2])
    button = driver.find_element(By.ID, "sign_in")
    button.click()
    wait.until(seen.staleness_of(button))  # GitLab's page is gone: what follows is the next page's


def heading(driver: webdriver.Chrome) -> str:
    """The page's h1, read again if the page changes under the read (a redirect landing)."""
    wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException, NoSuchElementException])
    return str(wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text))


def test_a_member_signs_in_once_for_two_apps_and_a_stranger_is_refused(alb_world):
    world = alb_world
    first, second = live_app(world, 1), live_app(world, 2)
    edge = world.edge()
    SHOTS.mkdir(parents=True, exist_ok=True)
    member = browser(edge.port, world.review_domain)
    try:
        member.get(f"https://{first}/")
        assert "Sign in to GitLab" in heading(member)
        member.save_screenshot(str(SHOTS / "1-gitlab-sign-in.png"))
        sign_in(member, "dana")
        assert heading(member) == f"The review app at {first}"
        assert member.current_url == f"https://{first}/" and "for @dana" in member.page_source
        member.save_screenshot(str(SHOTS / "2-first-app.png"))
        callbacks = edge.calls.count(f"{SIGNIN_HOST} /auth/callback")
        member.get(f"https://{second}/")
        assert heading(member) == f"The review app at {second}"  # no sign-in form on the way
        assert edge.calls.count(f"{SIGNIN_HOST} /auth/callback") == callbacks == 1
        member.save_screenshot(str(SHOTS / "3-second-app.png"))
    finally:
        member.quit()
    stranger = browser(edge.port, world.review_domain)
    try:
        stranger.get(f"https://{first}/")
        sign_in(stranger, "mallory")
        assert heading(stranger) == "You can't open this review app"
        text = stranger.find_element(By.TAG_NAME, "body").text
        assert "Only members of this review app's project with Reporter access or more can open it" in text
        assert "Ask the project's maintainers for Reporter access or more" in text
        assert PROJECT_PATH not in text and "!1" not in text  # a stranger is told no private name
        assert "The review app at" not in stranger.page_source
        stranger.save_screenshot(str(SHOTS / "4-refused.png"))
    finally:
        stranger.quit()
