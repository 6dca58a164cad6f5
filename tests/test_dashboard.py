"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium), driven by Playwright."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from stepstone.store import run_search

from .apps import odd_ids
from .live_server import LiveServer, send_one, wait_for_run
from .sdk import harness
from .server_app import build_app

CHROMIUM = os.environ.get("STEPSTONE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TOKEN = "dash-token-Rr5"

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: run scripts/system-deps.sh (apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("dashboard") / "stepstone.db"
    with LiveServer(build_app(f"sqlite:///{path}"), dev=True) as live:
        yield live


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


EXACT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
# STEPSTONE_DOCS_SCREENSHOTS=1 writes the screenshots docs/dashboard.md shows
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


class Watched:
    """A page, and what went wrong in it: script errors, dialogs, policy violations; and
    the answers it got that were 404s (a search must not poll a missing id)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.not_found: list[str] = []
        self.expected: list[str] = []  # console errors a test provokes on purpose
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        # a 404 is how the search learns that an id is not a run's (or an event's)
        allowed = ["404 (Not Found)", *self.expected]
        if message.type == "error" and not any(text in message.text for text in allowed):
            self.problems.append(f"console: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _response(self, response: Any) -> None:
        if response.status == 404:
            self.not_found.append(response.url)

    def shot(self, name: str, *, docs: bool = False) -> None:
        """A screenshot in test-artifacts/; with `docs`, the one of docs/screenshots/."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
        if docs and os.environ.get("STEPSTONE_DOCS_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    watched = Watched(page)
    yield watched
    context.close()
    assert watched.problems == []
    assert watched.dialogs == []


def event_of(api: httpx.Client, run_id: str) -> str:
    event_id: str = api.get(f"/v1/runs/{run_id}").json()["event_ids"][0]
    return event_id


# -- runs --------------------------------------------------------------------------------------
def test_a_new_run_appears_and_shows_its_steps(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    page = watched.page
    page.goto(f"{server.url}/#/runs")
    expect(page.locator("#runs-body tr").first).to_be_visible()
    run_id = send_one(api, "test/greet", {"name": "live"})  # sent after the page loaded
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("completed")
    # the trigger event by name, linked to it; the start relative to now, exact on hover
    event = row.locator(".event-cell a")
    expect(event).to_have_text("test/greet")
    expect(event).to_have_attribute("href", f"#/events/{event_of(api, run_id)}")
    started = row.locator("td.started time")
    expect(started).to_have_text("just now")
    expect(started).to_have_attribute("title", EXACT_TIME)
    watched.shot("runs")

    row.get_by_role("link", name=run_id).click()
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-output pre")).to_have_text(
        json.dumps({"said": "HELLO LIVE"}, indent=2)
    )
    expect(page.locator("#trigger")).to_contain_text('"name": "live"')
    expect(page.locator(".fact").filter(has_text="Event").locator("a")).to_have_text("test/greet")
    expect(page.locator(".fact").filter(has_text="Created").locator("time")).to_have_attribute(
        "title", EXACT_TIME
    )
    for step_id in ("say-hello", "shout"):
        page.locator(f'.wf-row[data-step-id="{step_id}"]').click()
    expect(page.locator('[data-step-detail="say-hello"] .step-output pre')).to_have_text(
        json.dumps({"greeting": "hello live"}, indent=2)
    )
    expect(page.locator('[data-step-detail="shout"] .step-output pre')).to_have_text('"HELLO LIVE"')
    expect(page.locator("#history")).to_contain_text("completed")
    watched.shot("run", docs=True)


def test_long_values_are_collapsed_and_can_be_copied(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    run_id = send_one(api, "test/report")
    run = wait_for_run(api, run_id)
    page = watched.page
    page.goto(f"{server.url}/#/runs/{run_id}")
    output = page.locator("#run-output")
    full = json.dumps(run["output"], indent=2)
    expect(output.locator("pre")).to_contain_text('"label": "row 1"')
    expect(output.locator("pre")).not_to_contain_text('"label": "row 39"')
    toggle = output.locator("[data-toggle]")
    expect(toggle).to_have_text(f"show all ({full.count(chr(10)) + 1} lines)")
    toggle.click()
    expect(output.locator("pre")).to_have_text(full)
    page.wait_for_timeout(1500)  # a refresh re-renders the page: what was opened stays open
    expect(output.locator("pre")).to_have_text(full)
    output.locator("[data-copy]").click()
    expect(output.locator("[data-copy]")).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == full
    toggle.click()
    expect(output.locator("pre")).not_to_contain_text('"label": "row 39"')


def test_retries_show_each_attempt_with_its_error_and_stack(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    run_id = send_one(api, "test/flaky")
    wait_for_run(api, run_id)
    page = watched.page
    page.goto(f"{server.url}/#/runs/{run_id}")
    step = page.locator('.wf-row[data-step-id="unsteady"]')
    expect(step).to_contain_text("3\u00d7")  # 3 attempts
    expect(step.locator(".wf-tick")).to_have_count(2)
    step.click()
    attempts = page.locator('[data-step-detail="unsteady"] .attempts li')
    expect(attempts).to_have_count(2)
    for n in (1, 2):
        attempt = attempts.nth(n - 1)
        expect(attempt.locator(".attempt-error")).to_have_text(f"RuntimeError: attempt {n} failed")
        expect(attempt.locator("details.stack pre")).to_be_hidden()
        attempt.locator("summary").click()
        stack = attempt.locator("details.stack pre")
        expect(stack).to_contain_text("Traceback")
        expect(stack).to_contain_text(f"RuntimeError: attempt {n} failed")
    watched.shot("retries")


def test_a_cancelled_sleep_shows_as_cancelled_and_toasts_stay_on_their_page(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    run_id = send_one(api, "test/nap")
    wait_for_run(api, run_id, "sleeping")
    page = watched.page
    page.goto(f"{server.url}/#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("sleeping")
    sleep = page.locator('.wf-row[data-step-id="wait"]')
    expect(sleep.locator(".kind")).to_have_text("sleep")
    expect(sleep).to_contain_text("wakes in 59m")
    watched.shot("sleeping")
    page.click("#cancel-run")
    page.click("#confirm-cancel")
    expect(page.locator("#toast")).to_have_text("Cancellation requested.")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#cancel-run")).to_have_count(0)
    expect(sleep.locator(".badge")).to_have_text("cancelled")
    expect(sleep).to_contain_text("cancelled after")
    expect(sleep).not_to_contain_text("wakes in")
    expect(sleep.locator(".wf-bar.cancelled")).to_have_count(1)
    assert api.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"
    watched.shot("cancelled")
    page.click('.nav a[data-nav="events"]')
    expect(page.locator("#events")).to_be_visible()
    expect(page.locator("#toast")).to_be_hidden()


def test_rerun_from_a_step_shows_the_kept_steps_apart_and_links_both_runs(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    run_id = send_one(api, "test/greet", {"name": "again"})
    old = wait_for_run(api, run_id)
    page = watched.page
    page.goto(f"{server.url}/#/runs/{run_id}")
    page.locator('.wf-row[data-step-id="shout"]').click()
    page.locator('[data-rerun-from="shout"]').click()
    expect(page.locator("#run-id")).not_to_have_text(run_id)
    new_id = page.locator("#run-id").text_content()
    assert new_id
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#rerun-of")).to_have_text(f"rerun of {run_id}")
    expect(page.locator("#kept-steps")).to_contain_text(f"Kept from run {run_id}")
    kept = page.locator('.wf-row.kept[data-step-id="say-hello"]')
    expect(kept.locator(".badge")).to_have_text("kept")
    expect(kept.locator(".wf-bar")).to_have_count(0)  # outside the new run's time axis
    expect(page.locator('.wf-row:not(.kept)[data-step-id="shout"] .wf-bar')).to_have_count(1)
    new = api.get(f"/v1/runs/{new_id}").json()
    assert new["event_ids"] == old["event_ids"]
    kept_step = next(s for s in new["steps"] if s["id"] == "say-hello")
    assert kept_step["started_at"] == old["steps"][0]["started_at"]
    # the axis spans the new run only: from its start to its end
    span = page.locator("#wf-span").text_content() or ""
    assert span.endswith(("ms", " s")), span
    watched.shot("rerun", docs=True)

    page.locator("#rerun-of a").click()
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(page.locator("#reruns")).to_contain_text(new_id)
    page.locator("#reruns a").first.click()
    expect(page.locator("#run-id")).to_have_text(new_id)


def test_filter_by_status_and_function_and_search(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    failed_id = send_one(api, "test/broken", {"message": "filtered"})
    greet_id = send_one(api, "test/greet")
    wait_for_run(api, failed_id)
    wait_for_run(api, greet_id)
    page = watched.page
    page.goto(f"{server.url}/#/runs")
    expect(page.locator(f'tr[data-run-id="{greet_id}"]')).to_be_visible()
    page.select_option("#status-filter", "failed")
    expect(page.locator(f'tr[data-run-id="{failed_id}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{greet_id}"]')).to_have_count(0)
    expect(page.locator("#runs-body .badge").filter(has_not_text="failed")).to_have_count(0)
    assert "status=failed" in page.url

    page.goto(f"{server.url}/#/runs")
    page.select_option("#function-filter", "greet")
    expect(page.locator(f'tr[data-run-id="{greet_id}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{failed_id}"]')).to_have_count(0)

    event_id = event_of(api, failed_id)
    page.goto(f"{server.url}/#/runs")
    page.fill("#search", event_id)
    page.press("#search", "Enter")
    expect(page.locator("#runs-body tr")).to_have_count(1)
    expect(page.locator(f'tr[data-run-id="{failed_id}"]')).to_be_visible()
    page.fill("#search", greet_id)
    page.press("#search", "Enter")
    expect(page.locator("#runs-body tr")).to_have_count(1)
    expect(page.locator(f'tr[data-run-id="{greet_id}"]')).to_be_visible()
    page.fill("#search", "no-such-id")
    page.press("#search", "Enter")
    expect(page.locator("#main")).to_contain_text("No run or event has the id no-such-id")
    expect(page.locator("#runs-body")).to_contain_text("No runs match.")
    watched.not_found.clear()
    page.wait_for_timeout(3000)  # polling goes on: a missing id is not asked for again
    assert watched.not_found == []


def test_find_runs_by_event_name_cel_and_time_in_a_shareable_url(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    acme = send_one(api, "billing/charge", {"account": "acme", "amount": 5})
    other = send_one(api, "billing/charge", {"account": "other", "amount": 7})
    greet = send_one(api, "test/greet")
    for run_id in (acme, other, greet):
        wait_for_run(api, run_id)
    page = watched.page
    rows = page.locator("#runs-body tr[data-run-id]")

    # a name typed in the search box finds the runs of events with that name, once
    page.goto(f"{server.url}/#/runs")
    page.fill("#search", "billing/charge")
    page.press("#search", "Enter")
    expect(page.locator(f'tr[data-run-id="{acme}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{greet}"]')).to_have_count(0)
    expect(
        page.locator("#runs-body .event-cell").filter(has_not_text="billing/charge")
    ).to_have_count(0)
    watched.not_found.clear()
    page.wait_for_timeout(2500)
    assert watched.not_found == []

    # wildcards, a CEL expression over the event, a time range: all in the URL
    page.goto(f"{server.url}/#/runs")
    page.fill("#event-filter", "billing/*")
    page.fill("#cel-filter", 'event.data.account == "acme"')
    page.press("#cel-filter", "Enter")
    expect(page.locator(f'tr[data-run-id="{acme}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{other}"]')).to_have_count(0)
    page.select_option("#range-filter", "15m")
    expect(page.locator(f'tr[data-run-id="{acme}"]')).to_be_visible()
    shared = page.url
    assert "event=billing%2F*" in shared and "range=15m" in shared and "if=" in shared
    watched.shot("search", docs=True)

    other_tab = page.context.new_page()
    other_tab.goto(shared)  # the same search, from the link alone
    expect(other_tab.locator("#runs-body tr[data-run-id]")).to_have_count(rows.count())
    expect(other_tab.locator(f'tr[data-run-id="{acme}"]')).to_be_visible()
    expect(other_tab.locator("#event-filter")).to_have_value("billing/*")
    expect(other_tab.locator("#cel-filter")).to_have_value('event.data.account == "acme"')
    expect(other_tab.locator("#range-filter")).to_have_value("15m")
    other_tab.close()

    page.select_option("#range-filter", "custom")
    page.fill("#range-from", "2000-01-01T00:00:00")
    page.fill("#range-to", "2000-01-02T00:00:00")
    page.click("#range-apply")
    expect(page.locator("#runs-body")).to_contain_text("No runs match.")
    assert "range=custom" in page.url and "from=2000-01-01" in page.url

    watched.expected.append("400 (Bad Request)")  # the API refuses the expression
    page.goto(f"{server.url}/#/runs?if=event.data.%20%3D%3D")
    expect(page.locator("#runs-error")).to_contain_text("the CEL expression does not compile")


def test_a_cel_search_reads_on_past_its_bounded_scan(
    server: LiveServer, api: httpx.Client, watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [send_one(api, "test/greet", {"scan": "s1", "n": n}) for n in range(6)]
    for run_id in ids:
        wait_for_run(api, run_id)
    monkeypatch.setattr(run_search, "SCAN_PAGE", 2)  # the server reads 4 runs per request
    monkeypatch.setattr(run_search, "SCAN_MAX", 4)
    page = watched.page
    cel = 'event.data.scan == "s1" && event.data.n < 1'
    page.goto(f"{server.url}/#/runs?event=test/greet&if=" + quote(cel))
    expect(page.locator("#runs-body")).to_contain_text("No runs match among the newest runs read")
    page.click("#load-more")  # reads on from where the server stopped
    expect(page.locator(f'tr[data-run-id="{ids[0]}"]')).to_be_visible()
    expect(page.locator("#runs-body tr[data-run-id]")).to_have_count(1)
    page.wait_for_timeout(1500)  # the live first page refreshes: the older run stays
    expect(page.locator(f'tr[data-run-id="{ids[0]}"]')).to_be_visible()


def test_cancel_and_rerun_many_runs_with_a_progress_count(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    napping = [send_one(api, "test/nap", {"batch": "b1"}) for _ in range(3)]
    for run_id in napping:
        wait_for_run(api, run_id, "sleeping")
    page = watched.page
    page.goto(f"{server.url}/#/runs?if=" + quote('event.data.batch == "b1"'))
    expect(page.locator("#runs-body tr[data-run-id]")).to_have_count(3)
    page.locator(f'input[data-pick="{napping[0]}"]').check()
    expect(page.locator("#bulk-count")).to_have_text("1 run selected")
    page.click("#select-all")
    expect(page.locator("#bulk-count")).to_have_text("All 3 runs that match are selected")
    watched.shot("bulk", docs=True)
    page.click("#bulk-cancel")
    expect(page.locator("#bulk-progress")).to_have_text("Cancelled 3 of 3 runs.")
    expect(page.locator("#runs-body .badge").filter(has_text="cancelled")).to_have_count(3)
    for run_id in napping:
        assert api.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"

    page.check("#select-page")
    expect(page.locator("#bulk-count")).to_have_text("3 runs selected")
    page.click("#bulk-rerun")
    expect(page.locator("#bulk-progress")).to_have_text("Reran 3 of 3 runs.")
    expect(page.locator("#runs-body tr[data-run-id]")).to_have_count(6)  # same events
    expect(page.locator("#bulk")).to_be_hidden()


# -- events and functions ----------------------------------------------------------------------
def test_send_a_test_event_from_the_form_and_replay_it(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    page = watched.page
    page.goto(f"{server.url}/#/events")
    page.fill("#event-name", "test/greet")
    page.fill("#event-data", "{not json")
    page.click("#send-event button[type=submit]")
    expect(page.locator("#send-result")).to_contain_text("The data is not valid JSON")

    page.fill("#event-data", '{"name": "form"}')
    page.click("#send-event button[type=submit]")
    link = page.locator("#send-result a")
    expect(link).to_be_visible()
    event_id = link.text_content()
    assert event_id
    row = page.locator(f'tr[data-event-id="{event_id}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text('{"name":"form"}')
    expect(row.locator("time")).to_have_text("just now")
    run_link = row.locator("td").nth(3).get_by_role("link")
    expect(run_link).to_have_count(1)
    event = api.get(f"/v1/events/{event_id}").json()
    assert (event["name"], event["data"]) == ("test/greet", {"name": "form"})
    watched.shot("events", docs=True)

    link.click()
    expect(page.locator("#event-title")).to_have_text("test/greet")
    expect(page.locator("#event-runs tbody tr")).to_have_count(1)
    expect(page.locator("#event-runs .event-cell a")).to_have_text("test/greet")
    watched.shot("event", docs=True)
    page.click("#replay")
    again = page.locator("#replay-result a")
    expect(again).to_be_visible()
    replayed_id = again.text_content()
    assert replayed_id and replayed_id != event_id
    replayed = api.get(f"/v1/events/{replayed_id}").json()
    assert (replayed["name"], replayed["data"]) == ("test/greet", {"name": "form"})
    assert len(replayed["runs"]) == 1
    again.click()
    expect(page.locator("#event-title")).to_have_text("test/greet")
    expect(page.locator("#event-runs tbody tr")).to_have_count(1)


def test_events_named_in_the_url_are_the_only_ones_listed(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    [named] = api.post("/v1/events", json={"name": "test/only-this", "data": {}}).json()["ids"]
    [other] = api.post("/v1/events", json={"name": "test/not-this", "data": {}}).json()["ids"]
    page = watched.page
    page.goto(f"{server.url}/#/events?name=test/only-this")
    expect(page.locator("#event-name")).to_have_value("test/only-this")
    expect(page.locator(f'tr[data-event-id="{named}"]')).to_be_visible()
    expect(page.locator("#events-body tr")).to_have_count(1)
    expect(page.locator(f'tr[data-event-id="{other}"]')).to_have_count(0)
    expect(page.locator("#events-filtered")).to_contain_text("Events named test/only-this")
    page.click("#events-filtered a")
    expect(page.locator(f'tr[data-event-id="{other}"]')).to_be_visible()


def test_functions_show_options_as_written_triggers_and_recent_runs(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    wait_for_run(api, send_one(api, "test/greet", {"name": "stats"}))
    page = watched.page
    page.goto(f"{server.url}/#/functions")
    echo = page.locator('[data-function-id="echo"]')
    expect(echo.locator(".triggers")).to_have_text("event test/echo if event.name != ''")
    expect(page.locator('[data-function-id="flaky"] .option').first).to_have_text("retries 3")
    hourly = page.locator('[data-function-id="hourly"] .triggers')
    expect(hourly).to_have_text("cron 0 * * * * (Europe/Paris)")
    options = page.locator('[data-function-id="charge"] .option')
    expect(options).to_have_text(
        [
            "retries 2",
            "concurrency 2 per event.data.account",
            "throttle 10 per 1m per event.data.account",
            "cancel on billing/refunded if async.data.id == event.data.id",
            "timeouts: finish within 1h",
        ]
    )
    greet = page.locator('[data-function-id="greet"]')
    hour = greet.locator('[data-window="hour"]')
    expect(hour.locator(".stats-total")).to_contain_text("completed")
    expect(hour.locator(".stats-durations")).to_contain_text("p50")
    expect(hour.locator(".chart.bars").first.locator(".bar")).to_have_count(12)
    expect(greet.locator('[data-window="day"] .chart.bars').first.locator(".bar")).to_have_count(24)
    expect(hour.locator(".seg.completed").last).to_be_visible()
    watched.shot("functions", docs=True)


def test_invoke_a_function_from_its_page_with_its_last_payload(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    wait_for_run(api, send_one(api, "test/greet", {"name": "prefill"}))
    page = watched.page
    page.goto(f"{server.url}/#/functions")
    page.locator('[data-function-id="greet"] h3 a').click()
    expect(page.locator("#function-title")).to_have_text("greet")
    payload = page.locator("#invoke-data")
    expect(payload).to_have_value(json.dumps({"name": "prefill"}, indent=2))
    watched.shot("function", docs=True)
    payload.fill('{"name": "invoked"}')
    page.click("#invoke button[type=submit]")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-output pre")).to_contain_text("HELLO INVOKED")
    expect(page.locator(".fact").filter(has_text="Event").locator("a")).to_have_text(
        "stepstone/function.invoked"
    )


def test_the_runs_list_after_a_while(server: LiveServer, watched: Watched) -> None:
    """The list as docs/dashboard.md shows it: the runs of the tests above, each with its
    event's name and its start relative to now."""
    page = watched.page
    page.goto(f"{server.url}/#/runs")
    rows = page.locator("#runs-body tr[data-run-id]")
    expect(rows.first).to_be_visible()
    assert rows.count() > 10
    expect(
        page.locator("#runs-body .event-cell a").filter(has_text="billing/charge").first
    ).to_be_visible()
    expect(
        page.locator("#runs-body time").filter(has_text=re.compile(r"ago|just now"))
    ).to_have_count(rows.count())
    watched.shot("runs", docs=True)


# -- what users wrote is text ---------------------------------------------------------------------
SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"


def test_user_data_is_shown_as_text_and_never_runs(
    server: LiveServer, api: httpx.Client, watched: Watched
) -> None:
    echo_id = send_one(api, "test/echo", {"script": SCRIPT, "img": IMG})
    broken_id = send_one(api, "test/broken", {"message": IMG})
    [named_id] = api.post("/v1/events", json={"name": f"test/{IMG}", "data": {}}).json()["ids"]
    wait_for_run(api, echo_id)
    wait_for_run(api, broken_id)
    echo_event = event_of(api, echo_id)
    page = watched.page

    def check(shot: str) -> None:
        assert page.evaluate("window.__xss") is None
        assert page.locator("#main img").count() == 0
        assert page.locator("#main script").count() == 0
        watched.shot(shot)

    page.goto(f"{server.url}/#/events")
    expect(page.locator(f'tr[data-event-id="{named_id}"]')).to_contain_text(f"test/{IMG}")
    expect(page.locator(f'tr[data-event-id="{echo_event}"]')).to_contain_text(SCRIPT)
    check("xss-events")

    page.goto(f"{server.url}/#/events/{echo_event}")
    expect(page.locator("#event-data-view")).to_contain_text(SCRIPT)
    expect(page.locator("#event-data-view")).to_contain_text(IMG.replace('"', '\\"'))
    check("xss-event")

    page.goto(f"{server.url}/#/runs/{echo_id}")
    page.locator('.wf-row[data-step-id="echo"]').click()
    expect(page.locator('[data-step-detail="echo"] .step-output')).to_contain_text(SCRIPT)
    expect(page.locator("#run-output")).to_contain_text(SCRIPT)
    check("xss-output")

    page.goto(f"{server.url}/#/runs/{broken_id}")
    expect(page.locator("#run-error .error-title")).to_have_text(f"NonRetriableError: {IMG}")
    check("xss-error")

    page.goto(f"{server.url}/#/runs?q={named_id}")
    expect(page.locator("#main")).to_contain_text(f"test/{IMG}")
    check("xss-search")

    page.goto(f"{server.url}/#/runs?event=" + quote(f"test/{IMG}"))
    expect(page.locator("#event-filter")).to_have_value(f"test/{IMG}")
    check("xss-filter")


# -- sign in ------------------------------------------------------------------------------------
def test_outside_dev_mode_the_dashboard_asks_for_the_token(
    tmp_path: Path, browser: Browser
) -> None:
    app = build_app(f"sqlite:///{tmp_path / 'login.db'}")
    with LiveServer(app, dev=False, event_keys=["k"], api_token=TOKEN) as live:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{live.url}/#/runs")
        expect(page.locator("#login")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-login.png"))
        if os.environ.get("STEPSTONE_DOCS_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS / "login.png"))
        page.fill("#token", "wrong")
        page.click("#login button[type=submit]")
        expect(page.locator("#login")).to_contain_text("That token was not accepted.")
        page.fill("#token", TOKEN)
        page.click("#login button[type=submit]")
        expect(page.locator("#runs")).to_be_visible()
        expect(page.locator("#runs-body")).to_contain_text("No runs yet")
        assert page.evaluate("sessionStorage.getItem('stepstone.token')") == TOKEN
        page.click("#sign-out")
        expect(page.locator("#login")).to_be_visible()
        context.close()


# -- ids holding any text ------------------------------------------------------------------------
def test_any_ids_show_as_text_and_link_by_encoding(watched: Watched, tmp_path: Path) -> None:
    app = odd_ids.build_app(f"sqlite:///{tmp_path / 'odd.db'}")
    with LiveServer(app, dev=True) as live, live.client() as http:
        event = {"name": odd_ids.EVENT, "data": {"n": 3}, "id": odd_ids.EVENT_ID}
        assert http.post("/v1/events", json=event).status_code == 200
        [summary] = http.get(f"/v1/events/{quote(odd_ids.EVENT_ID, safe='')}").json()["runs"]
        run_id = wait_for_run(http, summary["id"])["id"]
        page = watched.page
        page.goto(f"{live.url}/#/runs/{run_id}")
        steps = page.locator("#waterfall .step-id")
        expect(steps).to_have_text([odd_ids.STEP, "repeat", "repeat #2", odd_ids.INVOKE_STEP])
        expect(page.locator("#run b, #run i")).to_have_count(0)  # the ids' markup stays text
        watched.shot("odd-ids-run")
        for occurrence in (0, 1):  # each use of a repeated id opens on its own
            page.locator(
                f'.wf-row[data-step-id="repeat"][data-step-occurrence="{occurrence}"]'
            ).click()
        details = page.locator('[data-step-detail="repeat"]')
        expect(details).to_have_count(2)
        # a rerun starts from an id's first use: the later one offers none
        expect(details.nth(0).locator("[data-rerun-from]")).to_have_count(1)
        expect(details.nth(1).locator("[data-rerun-from]")).to_have_count(0)
        to_function = page.get_by_role("link", name=odd_ids.PARENT, exact=True)
        encoded = quote(odd_ids.PARENT, safe="-_.!~*'()")  # what encodeURIComponent gives
        expect(to_function).to_have_attribute("href", f"#/functions/{encoded}")
        to_function.click()  # the function's page, found by its decoded id
        expect(page.locator("#function h1")).to_contain_text(odd_ids.PARENT)
        page.goto(f"{live.url}/#/runs?function={encoded}")
        expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
        expect(page.locator("#runs-body tr")).to_have_count(1)

        page.goto(f"{live.url}/#/events/{quote(odd_ids.EVENT_ID, safe='')}")
        expect(page.locator("#event-title")).to_have_text(odd_ids.EVENT)
        expect(page.locator(f'#event-runs tr[data-run-id="{run_id}"]')).to_contain_text(
            odd_ids.PARENT
        )
        page.goto(f"{live.url}/#/functions")
        expect(page.locator(".card h3")).to_have_text([odd_ids.CHILD, odd_ids.PARENT])
        watched.shot("odd-ids")


# -- apps written with the official SDKs -----------------------------------------------------
def test_the_apps_page_lists_synced_sdk_apps_and_syncs_them_again(
    watched: Watched, tmp_path: Path
) -> None:
    app = build_app(f"sqlite:///{tmp_path / 'apps.db'}")
    with LiveServer(app, dev=True) as live:
        page = watched.page
        page.goto(f"{live.url}/#/apps")
        expect(page.locator("#apps .empty")).to_contain_text("No SDK app has synced yet")
        sdk = harness.start_app(
            "py", live.url, tmp_path, app_id="shop-py", extra_env={"SDK_TEST_FUNCTIONS": "sleeper"}
        )
        try:
            assert httpx.put(sdk.url, timeout=30).status_code == 200
            card = page.locator('[data-app-id="shop-py"]')
            expect(card.locator("h3")).to_have_text("shop-py")  # the page polls: it appears
            expect(card.locator(".app-url")).to_have_text(sdk.url)
            expect(card.locator(".app-sdk")).to_contain_text("py:v0.5.19")
            expect(card.locator(".app-functions a")).to_have_text(["shop-py-sleeper"])
            expect(card.locator(".app-error")).to_have_count(0)
            card.locator("[data-resync]").click()
            expect(page.locator("#toast")).to_contain_text("shop-py synced.")
            watched.shot("apps", docs=True)
        finally:
            sdk.stop()
        watched.expected.append("ERR_CONNECTION_REFUSED")
        card.locator("[data-resync]").click()  # the app is gone: the sync fails, and says why
        expect(page.locator("#toast")).to_contain_text("did not sync")
        expect(card.locator(".app-error")).to_contain_text("could not reach the app")
