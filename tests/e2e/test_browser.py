"""The web UI in a real headless Chromium (Selenium) against a real stack under supervisord.

Screenshots of every page go to artifacts/screenshots/ (or $PODVISOR_ARTIFACTS/screenshots/);
with PODVISOR_UPDATE_SCREENSHOTS=1 they are also copied to docs/img/ for the README.
A missing chromium or chromedriver fails these tests: they are part of the product's checks.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from podvisor.testing.harness import REPO, StackHandle, load_spec_dict, wait_for, wait_for_gone

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(os.environ.get("PODVISOR_ARTIFACTS") or REPO / "artifacts") / "screenshots"
DOCS_IMG = REPO / "docs" / "img"
PAYLOAD = ('<script>window.__pwned = 1; document.title = "pwned"</script>'
           '<img src=x onerror="window.__pwned = 2; document.title = \'pwned\'">')


# -- the browser ---------------------------------------------------------------------------------

def _chromium_processes(profile: Path) -> list[psutil.Process]:
    """Live processes of the Chromium that uses `profile` (every child carries the flag)."""
    flag = f"--user-data-dir={profile}"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and flag in (proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """Headless Chromium driven by chromedriver; quit and checked gone afterwards."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"the browser tests need {' and '.join(missing)}: "
                    "apt-get install chromium chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,800", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER)
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        yield driver
    finally:
        try:
            if driver is not None:
                driver.quit()
            else:  # the session never started: chromedriver may still run
                service.stop()
        finally:
            _ensure_gone(profile, service)


def _ensure_gone(profile: Path, service: Service) -> None:
    """Fail (after killing them) if chromedriver or any Chromium of `profile` outlived quit()."""
    # chromedriver is our child (a Popen): its pid cannot be reused before we reap it.
    driver = getattr(service, "process", None)

    def ours() -> list[Any]:
        alive: list[Any] = _chromium_processes(profile)
        if driver is not None and driver.poll() is None:
            alive.append(driver)
        return alive

    leftovers = wait_for_gone(ours, 10.0)
    for proc in leftovers:
        try:
            proc.kill()
        except (psutil.Error, OSError):
            pass
    if driver is not None and driver.poll() is None:
        driver.wait(10)
    if leftovers:
        pytest.fail(f"browser processes left behind: {[p.pid for p in leftovers]}", pytrace=False)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


# -- helpers -------------------------------------------------------------------------------------

def tag() -> str:
    return "t" + uuid.uuid4().hex[:12]


def console(driver: WebDriver) -> str:
    try:
        return "\n".join(f"{e['level']} {e['message']}" for e in driver.get_log("browser"))
    except WebDriverException:
        return ""


def waiter(driver: WebDriver, stack: StackHandle):
    def until(predicate, timeout: float, what: str):
        return wait_for(predicate, timeout, what, check=stack._check_alive,
                        output=lambda: f"browser console:\n{console(driver)}\n{stack.output(20)}")
    return until


def rows(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#rows tr")


def cells(row: WebElement) -> dict[str, str]:
    names = ("time", "level", "pod", "request_id", "message")
    return dict(zip(names, (td.text for td in row.find_elements(By.TAG_NAME, "td")), strict=True))


def timeline_rows(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#timeline-rows tr")


def timeline_cells(row: WebElement) -> dict[str, str]:
    names = ("offset", "time", "pod", "level", "message", "axis")
    return dict(zip(names, (td.text for td in row.find_elements(By.TAG_NAME, "td")), strict=True))


def bars(driver: WebDriver) -> list[WebElement]:
    """The histogram's bars that hold entries, oldest first."""
    return [bar for bar in driver.find_elements(By.CSS_SELECTOR, "#histogram-chart .bar")
            if bar.get_attribute("data-total") != "0"]


def search(driver: WebDriver, text: str) -> None:
    box = driver.find_element(By.ID, "f-q")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "search").click()


def screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # Fit the window to the page (within reason) so the picture holds no empty half-screen.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(360, min(int(height) + 24, 1100)))
    try:
        assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    finally:
        driver.set_window_size(1280, 800)
    if os.environ.get("PODVISOR_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / f"{name}.png")


def open_logs(driver: WebDriver, stack: StackHandle, query: str = "") -> None:
    driver.get(f"{stack.aggregator_url}/ui/logs{query}")
    waiter(driver, stack)(lambda: driver.find_element(By.ID, "main").is_displayed()
                          and "Searching" not in driver.find_element(By.ID, "status").text,
                          20, "the logs explorer")


# -- tests ---------------------------------------------------------------------------------------

def test_search_finds_a_seeded_line_and_shows_every_field(browser, stack):
    word = tag()
    stack.ingest(
           {"message": f"payment {word} declined: card expired", "level": "error", "pod": "order",
            "service_name": "order-service", "request_id": f"req-{word}", "customer": "c-77",
            "attempt": 3},
           {"message": "payment accepted", "level": "info", "pod": "order"})
    open_logs(browser, stack)
    search(browser, word)
    until = waiter(browser, stack)
    (found,) = until(lambda: [r for r in rows(browser) if word in r.text] if len(rows(browser)) == 1
                     else None, 15, "exactly the seeded line")
    line = cells(found)
    assert line["message"] == f"payment {word} declined: card expired"
    assert line["pod"] == "order" and line["level"].lower() == "error"
    assert line["request_id"] == f"req-{word}"
    assert f"q={word}" in browser.current_url  # the search is in the address: shareable
    found.click()
    detail = browser.find_element(By.ID, "detail")
    until(detail.is_displayed, 5, "the entry detail")
    fields = {tr.find_element(By.TAG_NAME, "th").text: tr.find_element(By.TAG_NAME, "td").text
              for tr in detail.find_elements(By.CSS_SELECTOR, "#detail-fields tr")}
    assert fields["customer"] == "c-77" and fields["attempt"] == "3"
    assert fields["service_name"] == "order-service" and fields["id"] and fields["timestamp"]


def test_live_tail_shows_a_new_line_within_two_seconds(browser, stack):
    open_logs(browser, stack)
    until = waiter(browser, stack)
    browser.find_element(By.ID, "live").click()
    until(lambda: browser.find_element(By.ID, "live-state").text == "Live", 15, "the tail stream open")
    word = tag()
    stack.ingest({"message": f"tail {word} arrived", "pod": "user", "level": "info"})
    # The bar: on screen within 2 s of the aggregator acknowledging the line.
    until(lambda: any(word in r.text for r in rows(browser)[:20]), 2.0, "the new line in the tail")
    assert word in cells(rows(browser)[0])["message"] or any(
        word in cells(r)["message"] for r in rows(browser)[:5])
    # And a line that really travels: app -> app.log -> logging sidecar -> aggregator -> browser.
    request_id = tag()
    reply = requests.get(stack.apps["user"] + "/users", headers={"X-Request-ID": request_id}, timeout=10)
    assert reply.status_code == 200
    until(lambda: any(cells(r)["request_id"] == request_id for r in rows(browser)[:50]), 20,
          "the app's access line in the tail")
    browser.find_element(By.ID, "live").click()
    until(lambda: not browser.find_element(By.ID, "live-state").is_displayed(), 5, "tail stopped")


def test_html_in_log_content_is_shown_as_text_and_never_runs(browser, stack):
    word = tag()
    hostile = {"message": f"{word} {PAYLOAD}", "pod": "user", "level": "<b>warning</b>",
               "request_id": f"{word}<img src=x onerror=\"window.__pwned=3\">", "note": PAYLOAD}
    stack.ingest(hostile)
    open_logs(browser, stack)
    until = waiter(browser, stack)
    search(browser, word)
    (row,) = until(lambda: rows(browser) if len(rows(browser)) == 1 else None, 15, "the hostile line")
    line = cells(row)
    assert line["message"] == f"{word} {PAYLOAD}"  # the literal text, visible
    assert line["request_id"] == hostile["request_id"] and line["level"] == hostile["level"].upper()
    row.click()
    until(browser.find_element(By.ID, "detail").is_displayed, 5, "the entry detail")
    note = next(tr.find_element(By.TAG_NAME, "td").text
                for tr in browser.find_elements(By.CSS_SELECTOR, "#detail-fields tr")
                if tr.find_element(By.TAG_NAME, "th").text == "note")
    assert note == PAYLOAD
    assert '"note": "<script>' in browser.find_element(By.ID, "detail-json").text
    # The same entry arriving over the live tail is rendered the same way.
    browser.find_element(By.ID, "f-q").clear()
    browser.find_element(By.ID, "live").click()
    until(lambda: browser.find_element(By.ID, "live-state").text == "Live", 15, "the tail stream open")
    second = tag()
    stack.ingest({**hostile, "message": f"{second} {PAYLOAD}"})
    until(lambda: any(second in r.text for r in rows(browser)[:20]), 10, "the hostile line in the tail")
    assert any(cells(r)["message"] == f"{second} {PAYLOAD}" for r in rows(browser)[:20])
    assert browser.execute_script("return window.__pwned") is None
    assert browser.title == "Logs · podvisor"
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script, main b") == []
    browser.find_element(By.ID, "live").click()


def test_bidi_overrides_and_control_characters_are_shown_not_obeyed(browser, stack):
    word = tag()
    # U+202E would show "txt.exe" as "exe.txt"; ESC and BEL could drive a terminal a log is copied to.
    stack.ingest({"message": f"{word} invoice\u202etxt.exe \x1b[31mred\x07", "pod": "user", "level": "info",
                   "note": "\u2066isolate\u2069 \u0085"})
    open_logs(browser, stack)
    until = waiter(browser, stack)
    search(browser, word)
    (row,) = until(lambda: rows(browser) if len(rows(browser)) == 1 else None, 15, "the line")
    assert cells(row)["message"] == f"{word} invoice⟨U+202E⟩txt.exe ⟨U+001B⟩[31mred⟨U+0007⟩"
    row.click()
    until(browser.find_element(By.ID, "detail").is_displayed, 5, "the entry detail")
    note = next(tr.find_element(By.TAG_NAME, "td").text
                for tr in browser.find_elements(By.CSS_SELECTOR, "#detail-fields tr")
                if tr.find_element(By.TAG_NAME, "th").text == "note")
    assert note == "⟨U+2066⟩isolate⟨U+2069⟩ ⟨U+0085⟩"
    assert "\u202e" not in browser.find_element(By.ID, "detail-json").text
    assert "⟨U+202E⟩" in browser.find_element(By.ID, "detail-json").text


def test_clicking_a_request_id_shows_its_lines_across_pods_as_a_timeline(browser, stack):
    request_id = tag()
    users = requests.get(stack.apps["user"] + "/users", timeout=10).json()["users"]
    products = requests.get(stack.apps["product"] + "/products", timeout=10).json()["products"]
    reply = requests.post(stack.apps["order"] + "/orders", timeout=20,
                          json={"user_id": users[0]["id"], "product_id": products[0]["id"],
                                "quantity": 1}, headers={"X-Request-ID": request_id})
    assert reply.status_code == 201, reply.text
    until = waiter(browser, stack)
    until(lambda: {e["pod"] for e in stack.logs(request_id=request_id)} >= {"user", "product", "order"},
          20, "the order's lines from all three pods")
    open_logs(browser, stack, "?pod=order&q=created")
    link = until(lambda: next((b for b in browser.find_elements(By.CSS_SELECTOR, "#rows .rid")
                               if b.text == request_id), None), 15, "the order's line")
    link.click()
    lines = until(lambda: [timeline_cells(r) for r in timeline_rows(browser)]
                  if len(timeline_rows(browser)) >= 3 else None, 15, "the request's timeline")
    stored = {e["message"] for e in stack.logs(request_id=request_id, limit=1000)}
    assert {line["message"] for line in lines} <= stored
    assert not browser.find_element(By.ID, "logs").is_displayed()  # the timeline replaces the list...
    assert not browser.find_element(By.ID, "histogram").is_displayed()  # ...and its axis the histogram
    assert {line["pod"].split("\n")[0] for line in lines} == {"user", "product", "order"}
    assert {line["pod"].split("\n")[1] for line in lines} == {"user-service", "product-service", "order-service"}
    times = [datetime.fromisoformat(line["time"]) for line in lines]
    assert times == sorted(times), "in timestamp order"
    assert lines[0]["offset"] == "+0 ms"
    offsets = [offset_ms(line["offset"]) for line in lines]
    assert offsets == sorted(offsets) and offsets[-1] == round((times[-1] - times[0]).total_seconds() * 1000)
    title = browser.find_element(By.ID, "timeline-title").text
    assert title.startswith(f"Request {request_id}: {len(lines)} lines from 3 pods"), title
    assert browser.find_element(By.ID, "f-request-id").get_attribute("value") == request_id
    assert browser.find_element(By.ID, "f-pod").get_attribute("value") == ""
    timeline_rows(browser)[0].click()
    until(browser.find_element(By.ID, "detail").is_displayed, 5, "the entry detail")
    screenshot(browser, "logs")


def offset_ms(text: str) -> int:
    """'+0 ms', '+250 ms', '+1.500 s', '+2 min 3.250 s' -> milliseconds."""
    minutes, _, rest = text.lstrip("+").rpartition(" min ")
    value, unit = rest.split()
    return int(minutes or 0) * 60_000 + round(float(value) * (1 if unit == "ms" else 1000))


def test_the_timeline_is_in_timestamp_order_not_arrival_order_and_takes_live_lines(browser, stack):
    request_id = tag()
    at = "2024-04-02T08:00:0"
    # Delivered out of time order, as three pods' loggers may deliver them.
    stack.ingest(
           {"message": "order saved", "pod": "order", "service_name": "order-service", "level": "info",
            "request_id": request_id, "timestamp": f"{at}1.500Z"},
           {"message": "request received", "pod": "gateway", "service_name": "gateway", "level": "info",
            "request_id": request_id, "timestamp": f"{at}0.000Z"},
           {"message": "stock reserved", "pod": "product", "service_name": "product-service",
            "level": "warning", "request_id": request_id, "timestamp": f"{at}0.250Z"})
    open_logs(browser, stack, f"?request_id={request_id}&live=1")
    until = waiter(browser, stack)
    until(lambda: len(timeline_rows(browser)) == 3, 15, "the three lines")
    lines = [timeline_cells(r) for r in timeline_rows(browser)]
    assert [line["message"] for line in lines] == ["request received", "stock reserved", "order saved"]
    assert [line["offset"] for line in lines] == ["+0 ms", "+250 ms", "+1.500 s"]
    assert [line["pod"] for line in lines] == ["gateway\ngateway", "product\nproduct-service",
                                               "order\norder-service"]
    title = browser.find_element(By.ID, "timeline-title").text
    assert title == (f"Request {request_id}: 3 lines from 3 pods (gateway, product, order) over 1.500 s")
    # Each line's dot sits on a shared time axis, placed by its time.
    dots = [float(r.find_element(By.CSS_SELECTOR, ".tick circle").get_attribute("cx"))
            for r in timeline_rows(browser)]
    assert dots[0] < dots[1] < dots[2] and (dots[1] - dots[0]) / (dots[2] - dots[0]) == pytest.approx(1 / 6, abs=0.02)
    # A late line, live: inserted at its time, not appended.
    until(lambda: browser.find_element(By.ID, "live-state").text == "Live", 15, "the tail stream open")
    stack.ingest({"message": "user checked", "pod": "user", "service_name": "user-service", "level": "info",
                   "request_id": request_id, "timestamp": f"{at}0.100Z"})
    until(lambda: len(timeline_rows(browser)) == 4, 10, "the live line in the timeline")
    lines = [timeline_cells(r) for r in timeline_rows(browser)]
    assert [line["message"] for line in lines] == ["request received", "user checked", "stock reserved",
                                                   "order saved"]
    assert lines[1]["offset"] == "+100 ms"
    browser.find_element(By.ID, "live").click()
    browser.find_element(By.ID, "timeline-close").click()  # back to the list of every request
    until(lambda: browser.find_element(By.ID, "logs").is_displayed()
          and not browser.find_element(By.ID, "timeline").is_displayed(), 10, "the list again")


def test_histogram_draws_bars_by_level_and_a_click_narrows_the_range(browser, stack):
    word = tag()
    hour = "2024-03-01T10"
    stack.ingest(
           *({"message": f"{word} served {i}", "level": "info", "pod": "user", "timestamp": f"{hour}:00:0{i}Z"}
             for i in range(3)),
           *({"message": f"{word} failed {i}", "level": "error", "pod": "order",
              "timestamp": f"{hour}:20:1{i}.500Z"} for i in range(2)),
           {"message": f"{word} slow", "level": "warning", "pod": "product", "timestamp": f"{hour}:40:00Z"})
    open_logs(browser, stack, f"?q={word}&range=custom&since={hour}:00:00&until={hour}:59:59.999")
    until = waiter(browser, stack)
    filled = until(lambda: bars(browser) if len(bars(browser)) == 3 else None, 15, "three bars")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#histogram-chart .bar")) == 60  # a bar a minute
    assert [bar.get_attribute("data-total") for bar in filled] == ["3", "2", "1"]
    assert [bar.get_attribute("data-start") for bar in filled] == [
        f"{hour}:00:00.000Z", f"{hour}:20:00.000Z", f"{hour}:40:00.000Z"]
    levels = [[seg.get_attribute("class") for seg in bar.find_elements(By.CSS_SELECTOR, ".seg")] for bar in filled]
    assert levels == [["seg level-info"], ["seg level-error"], ["seg level-warning"]]
    heights = [float(bar.find_element(By.CSS_SELECTOR, ".seg").get_attribute("height")) for bar in filled]
    assert heights[0] > heights[1] > heights[2] > 0, "bar heights follow the counts"
    assert browser.find_element(By.ID, "histogram-caption").text.startswith("6 entries; one bar = 1 min.")
    legend = [key.text for key in browser.find_elements(By.CSS_SELECTOR, "#histogram-legend .key")]
    assert legend == ["error 2", "warning 1", "info 3"]
    assert browser.find_element(By.ID, "histogram-from").text == f"{hour.replace('T', ' ')}:00:00 UTC"
    screenshot(browser, "histogram")

    filled[1].click()  # the 10:20 bar: only its minute
    until(lambda: len(rows(browser)) == 2 and all("failed" in cells(r)["message"] for r in rows(browser)),
          15, "the bar's two entries only")
    assert browser.find_element(By.ID, "f-range").get_attribute("value") == "custom"
    assert browser.find_element(By.ID, "f-since").get_attribute("value").startswith(f"{hour}:20")
    assert browser.find_element(By.ID, "f-until").get_attribute("value") == f"{hour}:20:59.999"
    assert "since=" in browser.current_url and "until=" in browser.current_url
    # The histogram follows the narrower range: one-second bars now.
    until(lambda: browser.find_element(By.ID, "histogram-caption").text.startswith("2 entries; one bar = 1 s."),
          15, "the histogram of the minute")
    assert [bar.get_attribute("data-start") for bar in bars(browser)] == [f"{hour}:20:10.000Z", f"{hour}:20:11.000Z"]


def test_search_leaves_out_excluded_words_in_the_list_and_the_histogram(browser, stack):
    word = tag()
    pod = "p" + word
    stack.ingest(*({"message": f"{word} {name} line", "pod": pod, "level": "info"}
                    for name in ("alpha", "beta", "gamma")))
    open_logs(browser, stack)
    until = waiter(browser, stack)

    def messages() -> list[str]:
        return sorted(cells(r)["message"] for r in rows(browser))

    def shown(expected: list[str], what: str) -> None:
        until(lambda: messages() == expected and browser.find_element(By.ID, "histogram-caption").text
              .startswith(f"{len(expected)} {'entry' if len(expected) == 1 else 'entries'};"), 15, what)

    search(browser, f"{word} -beta")
    shown([f"{word} alpha line", f"{word} gamma line"], "everything but beta")
    search(browser, f'{word} NOT "gamma line"')
    shown([f"{word} alpha line", f"{word} beta line"], "everything but the gamma phrase")
    open_logs(browser, stack, f"?pod={pod}&q=-alpha+-gamma")  # exclusions only
    shown([f"{word} beta line"], "the one line left")
    search(browser, "NOT")  # a NOT with nothing after it: the server's 400 shown, not a blank page
    until(lambda: "NOT must be followed" in browser.find_element(By.ID, "error").text, 10, "the error")


def test_probe_lines_are_hidden_until_shown(browser, stack):
    word = tag()
    stack.ingest({"message": f"GET /health {word} 200", "pod": "user", "level": "info", "probe": True},
           {"message": f"GET /users {word} 200", "pod": "user", "level": "info"})
    open_logs(browser, stack)
    until = waiter(browser, stack)
    toggle = browser.find_element(By.ID, "f-probes")
    assert not toggle.is_selected(), "hidden by default"
    search(browser, word)
    until(lambda: [cells(r)["message"] for r in rows(browser)] == [f"GET /users {word} 200"], 15,
          "the request line only")
    assert "probe and scrape lines hidden" in browser.find_element(By.ID, "status").text
    toggle.click()
    until(lambda: len(rows(browser)) == 2, 15, "the probe line too")
    assert "probes=1" in browser.current_url
    until(lambda: browser.find_element(By.ID, "histogram-caption").text.startswith("2 entries"), 10,
          "the histogram counting probes too")
    # The stack's own probes: the controller's /health probes, marked by the user pod's logger.
    open_logs(browser, stack, "?pod=user&q=health&probes=1")
    until(lambda: any(cells(r)["message"] == "GET /health 200" for r in rows(browser)), 20,
          "the liveness probes' lines")
    browser.find_element(By.ID, "f-probes").click()
    until(lambda: "Searching" not in browser.find_element(By.ID, "status").text
          and not any("/health" in cells(r)["message"] for r in rows(browser))
          and "probes=1" not in browser.current_url, 15, "the probes hidden again")


def test_pods_page_lists_every_pod_with_status_and_charts(browser, stack):
    for url in stack.apps.values():
        for _ in range(5):
            requests.get(url + "/", timeout=10)
    browser.get(stack.aggregator_url + "/ui/pods")
    until = waiter(browser, stack)
    expected = {pod.name for pod in stack.spec.pods}

    def pod_rows() -> dict[str, WebElement] | None:
        found = {r.get_attribute("data-pod"): r
                 for r in browser.find_elements(By.CSS_SELECTOR, "#pod-rows tr")}
        charted = all(r.find_elements(By.CSS_SELECTOR, ".request_rate svg polyline")
                      for r in found.values())
        return found if set(found) == expected and charted else None

    found = until(pod_rows, 40, "every pod with a request-rate chart")
    for pod, row in found.items():
        assert row.find_element(By.CSS_SELECTOR, ".c-status").text == "Running", pod
        assert row.find_element(By.CSS_SELECTOR, ".c-ready").text == "3/3", pod
        assert row.find_element(By.CSS_SELECTOR, ".c-restarts").text == "0", pod
        assert row.find_element(By.CSS_SELECTOR, ".request_rate .value").text != "—", pod
    if os.environ.get("PODVISOR_UPDATE_SCREENSHOTS") == "1":
        _fill_charts_for_the_readme(browser, stack, until)
    screenshot(browser, "pods")


def _fill_charts_for_the_readme(browser: WebDriver, stack: StackHandle, until) -> None:
    """Only when refreshing docs/img: half a minute of uneven traffic, so the charts show a shape."""
    stop = threading.Event()

    def traffic() -> None:
        rnd = random.Random(3)
        while not stop.is_set():
            pod = rnd.choice(list(stack.apps))
            path = {"user": "/users", "product": "/products", "order": "/orders"}.get(pod, "/")
            for _ in range(rnd.randint(1, 6)):
                requests.get(stack.apps[pod] + path, timeout=10)
            stop.wait(rnd.random() / 4)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        def points() -> list[int]:
            return [len((line.get_attribute("points") or "").split()) for line in
                    browser.find_elements(By.CSS_SELECTOR, "#pod-rows .request_rate polyline")]
        until(lambda: len(points()) == len(stack.apps) and min(points()) >= 8, 90, "8 chart points")
    finally:
        stop.set()
        worker.join(15)


def test_login_with_the_token_when_reads_need_it(browser, podvisor_factory):
    spec = load_spec_dict(None)
    spec["stack"]["read_auth"] = "always"  # as on a VM: reads need the token even on loopback
    locked = podvisor_factory(spec)
    until = waiter(browser, locked)
    word = tag()
    locked.ingest({"message": f"secret {word} line", "pod": "user", "level": "info"})
    assert requests.get(locked.aggregator_url + "/api/v1/logs", timeout=5).status_code == 401
    browser.delete_all_cookies()
    browser.get(locked.aggregator_url + f"/ui/logs?q={word}")
    form = browser.find_element(By.ID, "login-form")
    until(form.is_displayed, 15, "the sign-in form")
    assert not browser.find_element(By.ID, "main").is_displayed()
    screenshot(browser, "login")

    token_box = browser.find_element(By.ID, "login-token")
    token_box.send_keys("not-the-token")
    browser.find_element(By.ID, "login-submit").click()
    until(lambda: browser.find_element(By.ID, "login-error").text == "That token is not valid.", 10,
          "the wrong-token message")
    token_box.clear()
    token_box.send_keys(locked.token())
    browser.find_element(By.ID, "login-submit").click()
    until(lambda: any(word in r.text for r in rows(browser)), 15, "the logs after signing in")
    assert not form.is_displayed()
    cookie = browser.get_cookie("podvisor_session")
    assert cookie and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert locked.token() not in cookie["value"], "the cookie holds a session id, never the token"
    assert "podvisor_session" not in browser.execute_script("return document.cookie")

    # Asked once: the cookie carries the next pages.
    browser.get(locked.aggregator_url + "/ui/pods")
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#pod-rows tr")) == len(locked.spec.pods),
          40, "the pods page without a second sign-in")
    assert not browser.find_element(By.ID, "login-form").is_displayed()

    # Signing out is a state change: the UI sends the CSRF header, or the server would refuse it.
    browser.find_element(By.ID, "logout").click()
    until(lambda: browser.find_element(By.ID, "login-form").is_displayed(), 15, "signed out")
    assert browser.get_cookie("podvisor_session") is None
    stale = requests.get(locked.aggregator_url + "/api/v1/logs", cookies={"podvisor_session": cookie["value"]},
                         timeout=5)
    assert stale.status_code == 401, "signing out revoked the session on the server"
    browser.delete_all_cookies()


def replica_pids(driver: WebDriver, pod: str) -> dict[str, int]:
    """program -> pid of the replicas the pods page shows for `pod` (that have a pid)."""
    items = driver.find_elements(By.CSS_SELECTOR, f'#pod-rows tr[data-pod="{pod}"] li.replica')
    return {li.get_attribute("data-program"): int(li.get_attribute("data-pid"))
            for li in items if li.get_attribute("data-pid")}


def running_pids(stack: StackHandle, programs: list[str]) -> dict[str, int]:
    """program -> pid of those supervisord has RUNNING."""
    found = {}
    for program in programs:
        info = stack.info(program)
        if info["statename"] == "RUNNING":
            found[program] = info["pid"]
    return found


def test_pod_actions_restart_stop_and_start_a_pod_with_replicas(browser, podvisor_factory):
    spec = load_spec_dict(None)
    spec["pods"] = {"user": {**spec["pods"]["user"], "replicas": 2}}  # one pod, two app processes
    small = podvisor_factory(spec)
    until = waiter(browser, small)
    programs = list(small.spec.pod("user").app_programs)
    browser.delete_all_cookies()
    browser.get(small.aggregator_url + "/ui/pods")

    def row() -> WebElement:
        return browser.find_element(By.CSS_SELECTOR, '#pod-rows tr[data-pod="user"]')

    def shown_as_running() -> dict[str, int] | None:
        shown = replica_pids(browser, "user")
        return shown if len(shown) == 2 and shown == running_pids(small, programs) else None

    before = until(lambda: row().find_element(By.CSS_SELECTOR, ".c-ready").text == "4/4" and shown_as_running(),
                   30, "two Ready replicas with supervisord's pids")
    pod = small.spec.pod("user")
    assert row().find_element(By.CSS_SELECTOR, ".ports").text.split("\n") == [
        f"app {pod.port}", f"metrics {pod.metrics_port}", f"logger {pod.logger_port}"]
    ports = {li.text.split(":")[1].split()[0] for li in row().find_elements(By.CSS_SELECTOR, "li.replica")}
    assert ports <= {str(port) for port in pod.slot_ports} and len(ports) == 2, "each replica's own port"
    assert re.fullmatch(r"\d+s|\d+m\d+s", row().find_element(By.CSS_SELECTOR, ".c-age").text)

    # Reads are open on loopback, actions are not: the first click asks for the token.
    row().find_element(By.CSS_SELECTOR, 'button[data-action="restart"]').click()
    until(browser.find_element(By.ID, "login-form").is_displayed, 15, "the sign-in form")
    assert running_pids(small, programs) == before, "nothing restarted without signing in"
    browser.find_element(By.ID, "login-token").send_keys(small.token())
    browser.find_element(By.ID, "login-submit").click()
    until(lambda: browser.find_element(By.ID, "main").is_displayed() and replica_pids(browser, "user"), 15,
          "the pods page, signed in")

    # Restart: a rolling one (the socket is held), every replica replaced by a new process.
    row().find_element(By.CSS_SELECTOR, 'button[data-action="restart"]').click()
    until(lambda: row().find_element(By.CSS_SELECTOR, ".op").text.startswith("pod user restarted"), 90,
          "the restart reported done")
    after = until(shown_as_running, 30, "the new replicas with supervisord's pids")
    assert not set(after.values()) & set(before.values()), f"every pid changed: {before} -> {after}"
    assert "ok" in row().find_element(By.CSS_SELECTOR, ".op").get_attribute("class")

    # Stop (confirmed), then start.
    row().find_element(By.CSS_SELECTOR, 'button[data-action="stop"]').click()
    alert = until(lambda: browser.switch_to.alert, 5, "the confirmation")
    assert "Stop pod user?" in alert.text
    alert.accept()
    until(lambda: row().find_element(By.CSS_SELECTOR, ".op").text == "pod user stopped"
          and row().find_element(By.CSS_SELECTOR, ".c-status").text == "Stopped", 60, "the pod stopped")
    until(lambda: not running_pids(small, programs) and not replica_pids(browser, "user"), 30,
          "no app process left, none shown")
    start = row().find_element(By.CSS_SELECTOR, 'button[data-action="start"]')
    assert row().find_element(By.CSS_SELECTOR, 'button[data-action="restart"]').get_attribute("disabled")
    start.click()
    until(lambda: row().find_element(By.CSS_SELECTOR, ".op").text == "pod user started"
          and row().find_element(By.CSS_SELECTOR, ".c-ready").text == "4/4", 90, "the pod started and Ready")
    started = until(shown_as_running, 30, "the started replicas with supervisord's pids")
    assert not set(started.values()) & set(after.values())
    screenshot(browser, "pods-actions")
