"""The web console in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``),
driven by Selenium against a live ``deep-tree-echo serve`` with an API key.

One browser and one server per module. Every wait is an explicit wait on a DOM condition.
Screenshots of each view go to ``test-artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _console_probe import PLUGIN_SOURCE
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from deep_tree_echo.plugins import ENTRY_POINT_GROUP
from deep_tree_echo.testing.live_server import EchoServer

pytestmark = pytest.mark.slow

KEY = "console-test-key-5f2a"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
XSS = "<img src=x onerror=alert(1)>"
WAIT = 30.0


def _install_probe(root: Path) -> None:
    (root / "dte_console_probe.py").write_text(PLUGIN_SOURCE)
    info = root / "dte_console_probe-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dte-console-probe\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nconsole-probe = dte_console_probe:ConsoleProbe\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    root = tmp_path_factory.mktemp("console")
    plugin_dir = root / "plugins"
    plugin_dir.mkdir()
    _install_probe(plugin_dir)
    path = os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH")) if p)
    env = {"DTE_API_KEYS": KEY, "DTE_PLUGINS": "console-probe", "PYTHONPATH": path,
           "DTE_RATE_LIMIT_REQUESTS": "100000"}
    with EchoServer(root / "data", env=env) as echo:
        yield echo


@pytest.fixture(scope="module")
def http(server: EchoServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):  # never skip: fail loudly
        pytest.fail("chromium and chromium-driver are not installed "
                    "(run scripts/ensure-test-servers.sh as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # Selenium Manager must never try to download anything
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_window_size(1280, 800)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message=f"waiting for {what}")


def find(driver: WebDriver, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def click(driver: WebDriver, css: str) -> None:
    """Click ``css``, finding it again if a re-render replaced it between find and click."""
    def clicked(d: WebDriver) -> bool:
        find(d, css).click()
        return True

    WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        clicked, message=f"clicking {css}")


def visible_text(css: str, text: str) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        return any(text in e.text for e in driver.find_elements(By.CSS_SELECTOR, css)
                   if e.is_displayed())
    return check


def shot(driver: WebDriver, name: str, *, full: bool = False) -> None:
    """Save a screenshot; ``full`` grows the window to the page's height first."""
    size = driver.get_window_size()
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], height + 200)
    try:
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    finally:
        if full:
            driver.set_window_size(size["width"], size["height"])


def assert_no_alert(driver: WebDriver) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"a JavaScript dialog opened: {text!r}")


@pytest.fixture(scope="module")
def console(browser: WebDriver, server: EchoServer) -> WebDriver:
    """The console, signed in with the key typed into the form (keyboard only)."""
    browser.get(f"{server.url}/")
    wait_for(browser, lambda d: d.current_url.endswith("/console"), "the / redirect")
    key_input = wait_for(browser, lambda d: find(d, "#login-key"), "the login form")
    assert browser.switch_to.active_element == key_input  # focus starts in the key field
    key_input.send_keys("wrong-key", Keys.ENTER)
    wait_for(browser, visible_text("#login-error", "refused"), "the refusal")
    key_input.clear()
    key_input.send_keys(KEY, Keys.ENTER)
    wait_for(browser, visible_text("#chat-status", "connected"), "the chat socket")
    assert KEY not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('dte.console.key')") == KEY
    return browser


def go(driver: WebDriver, view: str) -> None:
    find(driver, f"#nav-{view}").click()
    wait_for(driver, lambda d: find(d, f"#{view}-view").is_displayed(), f"the {view} view")


def test_chat_reply_shows_confidence_and_memories_with_breakdown(console: WebDriver) -> None:
    go(console, "chat")
    box = find(console, "#chat-input")
    box.send_keys("the vault code is 7741", Keys.ENTER)
    wait_for(console, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chat-log li.agent")) == 1,
             "the first reply")
    box.send_keys("what is the vault code?", Keys.ENTER)
    wait_for(console, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chat-log li.agent")) == 2,
             "the second reply")
    reply = console.find_elements(By.CSS_SELECTOR, "#chat-log li.agent")[-1]
    assert "7741" in reply.find_element(By.CSS_SELECTOR, ".chat-text").text
    assert reply.find_element(By.CSS_SELECTOR, ".confidence").text.startswith("confidence ")
    used = reply.find_elements(By.CSS_SELECTOR, "button.memory-used")
    assert used, "the answer lists the memories it used"
    shot(console, "chat")
    used[0].click()
    wait_for(console, visible_text("#memory-dialog-content", "7741"), "the memory dialog")
    signals = {row.get_attribute("data-signal"): row.find_element(By.CSS_SELECTOR, "td").text
               for row in console.find_elements(By.CSS_SELECTOR, "#memory-breakdown tbody tr")}
    assert set(signals) == {"score", "relevance", "recency", "importance"}
    assert all(float(v) >= 0 for v in signals.values())
    shot(console, "chat-memory")
    find(console, "#memory-dialog").send_keys(Keys.ESCAPE)
    wait_for(console, lambda d: not find(d, "#memory-dialog").is_displayed(), "dialog closed")


def test_memory_search_opens_a_hostile_memory_as_text(
    console: WebDriver, http: httpx.Client
) -> None:
    r = http.put("/v1/memories/xss-probe", json={"content": XSS, "importance": 0.9,
                                                  "kind": "probe"})
    assert r.status_code in (200, 201)
    go(console, "memory")
    find(console, "#memory-query").send_keys("img onerror")
    find(console, "#memory-filters").send_keys("kind=probe")
    find(console, "#memory-search-submit").click()
    row = '#memory-results tr[data-memory-id="xss-probe"]'
    wait_for(console, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the search result")
    wait_for(console, lambda d: find(d, f"{row} .content-cell").text == XSS, "the text")
    assert not console.find_elements(By.CSS_SELECTOR, "main img, dialog img")
    click(console, f"{row} button.open-memory")
    wait_for(console, visible_text("#memory-dialog-content", "onerror"), "the memory dialog")
    assert find(console, "#memory-dialog-content").text == XSS
    assert console.find_elements(By.CSS_SELECTOR, "#memory-breakdown")
    assert not console.find_elements(By.CSS_SELECTOR, "dialog img")
    assert_no_alert(console)
    shot(console, "memory")
    find(console, "#memory-dialog-close").click()
    shot(console, "memory-results")


def test_memory_edit_import_and_delete(
    console: WebDriver, http: httpx.Client, tmp_path: Path
) -> None:
    go(console, "memory")
    records = [{"id": f"imported-{i}",
                "data": {"content": f"imported fact {i}", "kind": "imp" if i else "imp-edit"}}
               for i in range(12)]
    dump = tmp_path / "memories.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in records))
    find(console, "#memory-import").send_keys(str(dump))
    wait_for(console, visible_text("#memory-status", "imported 12, failed 0"), "the import")
    assert http.get("/v1/memories/imported-1").json()["data"]["content"] == "imported fact 1"

    rows = "#memory-results tbody tr[data-memory-id]"
    find(console, "#memory-query").clear()
    find(console, "#memory-filters").clear()
    find(console, "#memory-filters").send_keys("kind=imp")  # 11 memories: pages of 10 and 1
    Select(find(console, "#memory-page-size")).select_by_visible_text("10")
    find(console, "#memory-search-submit").click()
    wait_for(console, visible_text("#memory-status", "more than 10 results"), "page 1")
    first_page = {e.get_attribute("data-memory-id")
                  for e in console.find_elements(By.CSS_SELECTOR, rows)}
    assert len(first_page) == 10
    find(console, "#memory-next").click()
    wait_for(console, visible_text("#memory-page", "page 2"), "page 2")
    wait_for(console, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 1, "one row")
    [last] = console.find_elements(By.CSS_SELECTOR, rows)
    assert last.get_attribute("data-memory-id") not in first_page
    assert not find(console, "#memory-next").is_enabled()

    find(console, "#memory-filters").clear()
    find(console, "#memory-filters").send_keys("kind=imp-edit")
    find(console, "#memory-search-submit").click()
    row = '#memory-results tr[data-memory-id="imported-0"]'
    wait_for(console, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the imported memory")
    click(console, f"{row} button.open-memory")
    wait_for(console, visible_text("#memory-dialog-content", "imported fact 0"), "the dialog")
    find(console, "#memory-edit").click()
    editor = wait_for(console, lambda d: find(d, "#memory-edit-data"), "the editor")
    editor.clear()
    editor.send_keys('{"content": "edited fact", "kind": "imp", "importance": 0.9}')
    find(console, "#memory-save").click()
    wait_for(console, visible_text("#memory-dialog-content", "edited fact"), "the saved memory")
    assert http.get("/v1/memories/imported-0").json()["data"]["importance"] == 0.9

    find(console, "#memory-delete").click()
    confirm = wait_for(console, lambda d: d.switch_to.alert, "the delete confirmation")
    assert "imported-0" in confirm.text
    confirm.accept()
    wait_for(console, lambda d: not find(d, "#memory-dialog").is_displayed(), "dialog closed")
    assert http.get("/v1/memories/imported-0").status_code == 404
    wait_for(console, lambda d: not d.find_elements(By.CSS_SELECTOR, row), "the row gone")


def test_events_view_shows_events_breaker_transitions_and_alerts_as_they_arrive(
    console: WebDriver, http: httpx.Client
) -> None:
    go(console, "memory")
    find(console, "#nav-memory").send_keys(Keys.TAB)  # keyboard: the next link, then Enter
    assert console.switch_to.active_element == find(console, "#nav-events")
    console.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(console, lambda d: find(d, "#events-view").is_displayed(), "the events view")
    assert console.switch_to.active_element == find(console, "#events-title")
    wait_for(console, visible_text("#events-status", "live"), "the event stream")
    r = http.put("/v1/memories/event-probe", json={"content": "an event arrives"})
    assert r.status_code in (200, 201)
    item = '#events-log li[data-type="memory.update"]'
    wait_for(console, lambda d: any("event-probe" in e.text
                                    for e in d.find_elements(By.CSS_SELECTOR, item)),
             "the memory.update event")
    r = http.post("/v1/process", json={"data": "trip the probe", "session_id": "probe"})
    assert r.status_code == 200
    wait_for(console, visible_text("#events-log li.breaker", "probe-tripped: closed → open"),
             "the breaker transition")
    wait_for(console, visible_text("#events-log li.alert", "probe-alerting high_failure_rate"),
             "the alert")
    find(console, "#events-type-memory-update").click()  # filter the type out
    assert not any(e.is_displayed() for e in console.find_elements(By.CSS_SELECTOR, item))
    find(console, "#events-type-memory-update").click()
    shot(console, "events")


def test_health_shows_breakers_in_every_state_and_the_monitor(console: WebDriver) -> None:
    go(console, "health")
    states = {"probe-closed": "closed", "probe-open": "open", "probe-half-open": "half-open"}
    for name, state in states.items():
        wait_for(console, visible_text(f'#health-breakers tr[data-name="{name}"] .badge', state),
                 f"breaker {name} {state}")
    wait_for(console, visible_text('#health-integrations tr[data-name="probe-api"]', "25.0 %"),
             "the probe integration's error rate")
    wait_for(console, visible_text("#health-alerts", "probe-api"), "the open alert")
    wait_for(console, visible_text('#health-limiters tr[data-name="http"]', "100000 / 60 s"),
             "the service's own rate limiter")
    assert find(console, "#health-chart svg polyline.p99")
    assert find(console, "#health-store").text.count("sqlite") == 1
    shot(console, "health", full=True)


def test_phone_width_and_no_policy_violations(console: WebDriver) -> None:
    console.set_window_size(390, 844)
    try:
        go(console, "chat")
        box = find(console, "#chat-input")
        assert box.is_displayed() and box.size["width"] < 390
        width = console.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, "no horizontal scrolling at phone width"
        shot(console, "chat-phone")
    finally:
        console.set_window_size(1280, 800)
    urls = console.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/v1/status" in u for u in urls)
    assert not [u for u in urls if KEY in u], "the key never goes in an HTTP URL"
    logs = console.get_log("browser")
    violations = [e["message"] for e in logs if "Content Security Policy" in e["message"]]
    assert violations == []
    assert_no_alert(console)

