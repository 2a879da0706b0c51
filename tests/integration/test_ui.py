"""The status page in a real browser (Debian's chromium, headless, driven by Selenium through
chromium-driver) against a daemon running real jobs on the engine: what a person sees, the
colours of the strips, a failed run's error by clicking through, no console errors, every
link reached by the keyboard; screenshots at a desktop and a phone size in tests/artifacts/."""

from __future__ import annotations

import re
import shlex
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from .conftest import Daemon, event, run_job

pytestmark = pytest.mark.integration

Start = Callable[..., Daemon]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
HOSTILE = '<script>window.pwned=1</script>"><img src=x onerror=window.pwned=2></style>'
"""A failing job's output: on its run page it must be text, never markup."""
GREEN, RED = "rgba(26, 127, 55, 1)", "rgba(207, 34, 46, 1)"
"""The style sheet's succeeded and failed colours (#1a7f37, #cf222e), as computed."""


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def viewport(driver: WebDriver, width: int, height: int, *, mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def row_of(driver: WebDriver, job: str) -> WebElement:
    for row in driver.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr"):
        if row.find_element(By.CSS_SELECTOR, "th.name").text == job:
            return row
    raise AssertionError(f"no row for job {job!r}")


def cells(row: WebElement) -> list[WebElement]:
    return row.find_elements(By.CSS_SELECTOR, ".strip i")


def errors(driver: webdriver.Chrome) -> list[str]:
    """The browser console's errors (a refused style or script under the CSP is one)."""
    logs = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e["message"] for e in logs if e["level"] == "SEVERE"]


def test_status_page_in_a_browser(start_daemon: Start, browser: webdriver.Chrome) -> None:
    """A succeeding, a failing and a disabled job: rows, strips in green and red with their
    outcome in words, next runs, the failed run's error one click from its job, the keyboard
    reaching every link, no console error; screenshots at 1280x800 and 390x844."""
    daemon = start_daemon(
        run_job("backup-db", ["true"], schedule="@every 2s")
        + run_job("broken", ["/no/such/program"], schedule="@every 2s")
        + run_job(
            "noisy", ["sh", "-c", f"echo {shlex.quote(HOSTILE)}; exit 3"], schedule="@every 2s"
        )
        + run_job("nightly", ["true"], schedule="0 3 * * *")
        + run_job("paused", ["true"], schedule="0 3 * * *", enabled=False),
        daemon="ui = true\n",
    )
    port = daemon.log.wait_for(event("http.listening"), timeout=30)[0]["port"]
    base = f"http://127.0.0.1:{port}"
    daemon.log.wait_for(event("run.succeeded", job="backup-db"), timeout=60, count=2)
    daemon.log.wait_for(event("run.failed", job="broken"), timeout=60, count=2)
    daemon.log.wait_for(event("run.failed", job="noisy"), timeout=60)

    browser.get(base + "/")
    assert browser.title == f"crontainer {daemon.name}"
    see_rows(browser)
    see_timeline(browser)
    tab_through(browser)
    screenshots(browser, base)
    see_failed_run(browser, base, daemon)
    see_hostile_output(browser, base)
    see_refused_reload(browser, base, daemon)
    see_live_refresh(browser, base)
    assert errors(browser) == []
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=30) == 0


def see_rows(browser: webdriver.Chrome) -> None:
    """The rows, next runs and strips a person sees on /."""
    names = [
        r.find_element(By.CSS_SELECTOR, "th.name").text
        for r in browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    ]
    assert names == ["backup-db", "broken", "nightly", "noisy", "paused"]
    good, bad, paused = (row_of(browser, n) for n in ("backup-db", "broken", "paused"))
    assert re.search(r"(in \d+ s|now)\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", good.text), good.text
    assert "disabled" in paused.text
    assert "0 3 * * *" in paused.text
    assert cells(paused) == []
    assert "failed" in bad.text
    for row, outcome, colour in ((good, "succeeded", GREEN), (bad, "failed", RED)):
        # the newest cell may be a run under way (blue, "running"): the ended ones count
        found = [c for c in cells(row) if c.get_attribute("class") != "s-running"]
        assert len(found) >= 2
        assert {c.get_attribute("class") for c in found} == {f"s-{outcome}"}
        assert {c.value_of_css_property("background-color") for c in found} == {colour}
        assert all((c.get_attribute("title") or "").endswith(f", {outcome}") for c in found)
        label = row.find_element(By.CSS_SELECTOR, ".strip").get_attribute("aria-label") or ""
        assert re.fullmatch(rf"last \d+ runs: \d+ {outcome}(, 1 running)?", label), label
    header = browser.find_element(By.TAG_NAME, "header").text
    assert "health: ok" in header
    assert "daemon: settled, ready" in header
    assert "reloads: 0" in header
    assert "failed\nexit code 3" in row_of(browser, "noisy").text


def see_timeline(browser: webdriver.Chrome) -> None:
    """The next 24 h: a band across the whole width for each job firing every 2 s, one mark
    for the nightly job at its next run, no row for the disabled one."""
    section = browser.find_element(By.CSS_SELECTOR, "section.timeline")
    assert section.find_element(By.TAG_NAME, "h2").text == "Next 24 hours"
    lanes = {
        r.find_element(By.CSS_SELECTOR, "th.name").text: r.find_element(By.TAG_NAME, "svg")
        for r in section.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert list(lanes) == ["backup-db", "broken", "nightly", "noisy"]
    track = lanes["backup-db"].size["width"]
    assert track > 600
    band = lanes["backup-db"].find_elements(By.CSS_SELECTOR, "rect.band")
    assert len(band) == 1
    assert band[0].size["width"] >= track - 1
    (mark,) = lanes["nightly"].find_elements(By.CSS_SELECTOR, "rect.run")
    assert 0 < mark.size["width"] < track / 50
    label = lanes["nightly"].get_attribute("aria-label") or ""
    next_run = row_of(browser, "nightly").find_element(By.CSS_SELECTOR, "td.when").text
    day, clock = next_run.splitlines()[1].split()[:2]
    assert f"1 run in the next 24 h, the first at {day} {clock[:5]} UTC" in label, label


def tab_through(browser: webdriver.Chrome) -> None:
    """TAB from the top reaches every link and the filter's fields, in order."""
    focusable = browser.find_elements(By.CSS_SELECTOR, "a, input, select, button")
    assert len([e for e in focusable if e.tag_name == "a"]) >= 4
    body = browser.find_element(By.TAG_NAME, "body")
    reached = []
    for _ in focusable:
        body.send_keys(Keys.TAB)  # the key goes to the focused element
        body = browser.switch_to.active_element
        reached.append(body)
    assert [e.id for e in reached] == [e.id for e in focusable]


def screenshots(browser: webdriver.Chrome, base: str) -> None:
    """/ at 1280x800 and at 390x844 (a phone), saved in tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    viewport(browser, 1280, 800)
    browser.get(base + "/")
    browser.save_screenshot(str(ARTIFACTS / "status-page-1280x800.png"))
    viewport(browser, 390, 844, mobile=True)
    browser.get(base + "/")
    assert row_of(browser, "broken").find_element(By.CSS_SELECTOR, "th.name").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "status-page-390x844.png"))
    viewport(browser, 1280, 800)


def see_failed_run(browser: webdriver.Chrome, base: str, daemon: Daemon) -> None:
    """A failed run's error: the job's link on /, then a failed run on the job's page."""
    browser.get(base + "/")
    row_of(browser, "broken").find_element(By.LINK_TEXT, "broken").click()
    assert browser.find_element(By.TAG_NAME, "h2").text == "Job broken"
    see_chart(browser)
    failed = [
        r for r in browser.find_elements(By.CSS_SELECTOR, "table tbody tr") if "failed" in r.text
    ]
    failed[0].find_element(By.TAG_NAME, "a").click()
    page = browser.find_element(By.TAG_NAME, "main").text
    run_id = browser.find_element(By.TAG_NAME, "h2").text.removeprefix("Run ")
    assert "Status\nfailed" in page
    record = next(r for r in daemon.history("broken") if r["run_id"] == run_id)
    assert record["error"], record
    assert f"Error\n{record['error']}" in page
    browser.save_screenshot(str(ARTIFACTS / "status-page-run.png"))


def see_chart(browser: webdriver.Chrome) -> None:
    """The job page's duration chart: an image named by its title and description, a bar
    per run of the history below it, red for the failed ones (others were skipped: the
    job overlapped itself, or are still running)."""
    chart = browser.find_element(By.CSS_SELECTOR, "figure.chart svg")
    assert chart.size["width"] > 300
    assert chart.get_attribute("aria-labelledby") == "duration-t duration-d"
    title = browser.find_element(By.ID, "duration-t").get_attribute("textContent") or ""
    runs = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert title == f"Duration of the last {len(runs)} runs"
    bars = chart.find_elements(By.CSS_SELECTOR, "rect")
    assert len(bars) == len(runs)
    kinds = [b.get_attribute("class") for b in bars]
    assert set(kinds) <= {"s-failed", "s-skipped", "s-running"}
    failed = [b for b in bars if b.get_attribute("class") == "s-failed"]
    assert len(failed) >= 2
    assert {b.value_of_css_property("fill") for b in failed} == {"rgb(207, 34, 46)"}


def see_hostile_output(browser: webdriver.Chrome, base: str) -> None:
    """Output holding a script, an image with a handler and a closing style tag is shown as
    the text it is: no such element in the page, nothing ran."""
    browser.get(base + "/jobs/noisy?outcome=failed")
    browser.find_element(By.CSS_SELECTOR, "table tbody tr a").click()
    assert HOSTILE in browser.find_element(By.TAG_NAME, "pre").text
    found = browser.execute_script(
        "return [document.querySelectorAll('script, img, iframe, object').length,"
        " typeof window.pwned, document.styleSheets.length]"
    )
    assert found == [0, "undefined", 1]


def see_refused_reload(browser: webdriver.Chrome, base: str, daemon: Daemon) -> None:
    """A reload of a broken config is counted in the header (the daemon's own count)."""
    daemon.config.write_text(daemon.config.read_text() + "\n[jobs.broken\n")
    daemon.signal(signal.SIGHUP)
    daemon.log.wait_for(event("config.invalid"), timeout=30)
    browser.get(base + "/")
    assert "reloads: 0, 1 refused" in browser.find_element(By.TAG_NAME, "header").text


REFRESH = (
    "const done = arguments[arguments.length - 1];"
    "window.crontainerRefresh().then(done, (e) => done(String(e)));"
)
"""Runs the page's own refresh now (instead of waiting its 30 s) and answers its result."""


def see_live_refresh(browser: webdriver.Chrome, base: str) -> None:
    """With script, the page's live parts are replaced in place: the rows are new elements,
    the header's time moves on, the scroll position and a filter being typed stay."""
    viewport(browser, 390, 844, mobile=True)
    browser.get(base + "/")
    browser.find_element(By.NAME, "q").send_keys("back")
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 400);")
    old_row = row_of(browser, "backup-db")
    shown = browser.find_element(By.ID, "live-state").text
    for _ in range(20):  # the header's time is to the second
        assert browser.execute_async_script(REFRESH) is True
        if browser.find_element(By.ID, "live-state").text != shown:
            break
    assert browser.find_element(By.ID, "live-state").text != shown
    with pytest.raises(StaleElementReferenceException):
        old_row.text  # noqa: B018 - the old row is gone from the page
    assert row_of(browser, "backup-db").find_elements(By.CSS_SELECTOR, ".strip i")
    assert browser.execute_script("return window.scrollY") == 400
    assert browser.find_element(By.NAME, "q").get_attribute("value") == "back"
    viewport(browser, 1280, 800)
