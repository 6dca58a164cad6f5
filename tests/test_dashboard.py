"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium), driven by Playwright."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .apps import odd_ids
from .live_server import LiveServer, send_one, wait_for_run
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


class Watched:
    """A page, and what went wrong in it: script errors, dialogs, policy violations."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        # a 404 is how the search learns that an id is not a run's (or an event's)
        if message.type == "error" and "404 (Not Found)" not in message.text:
            self.problems.append(f"console: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    watched = Watched(page)
    yield watched
    context.close()
    assert watched.problems == []
    assert watched.dialogs == []


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
    watched.shot("runs")

    row.get_by_role("link", name=run_id).click()
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-output")).to_contain_text('"said": "HELLO LIVE"')
    expect(page.locator("#trigger")).to_contain_text('"name": "live"')
    for step_id in ("say-hello", "shout"):
        page.locator(f'.wf-row[data-step-id="{step_id}"]').click()
    expect(page.locator('[data-step-detail="say-hello"] .step-output')).to_have_text(
        json.dumps({"greeting": "hello live"}, indent=2)
    )
    expect(page.locator('[data-step-detail="shout"] .step-output')).to_have_text('"HELLO LIVE"')
    expect(page.locator("#history")).to_contain_text("completed")
    watched.shot("run")


def test_retries_show_each_failed_attempt(
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
    expect(attempts.nth(0)).to_contain_text("RuntimeError: attempt 1 failed")
    expect(attempts.nth(1)).to_contain_text("RuntimeError: attempt 2 failed")
    watched.shot("retries")


def test_cancel_a_sleeping_run_from_its_page(
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
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#cancel-run")).to_have_count(0)
    assert api.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"
    watched.shot("cancelled")


def test_rerun_from_a_chosen_step(server: LiveServer, api: httpx.Client, watched: Watched) -> None:
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
    new = api.get(f"/v1/runs/{new_id}").json()
    assert new["event_ids"] == old["event_ids"]
    kept = {s["id"]: s["started_at"] for s in new["steps"]}
    assert kept["say-hello"] == next(
        s["started_at"] for s in old["steps"] if s["id"] == "say-hello"
    )


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

    page.goto(f"{server.url}/#/runs")
    page.select_option("#function-filter", "greet")
    expect(page.locator(f'tr[data-run-id="{greet_id}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{failed_id}"]')).to_have_count(0)

    event_id = api.get(f"/v1/runs/{failed_id}").json()["event_ids"][0]
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


# -- events and functions ----------------------------------------------------------------------
def test_send_a_test_event_from_the_form(
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
    run_link = row.locator("td").nth(3).get_by_role("link")
    expect(run_link).to_have_count(1)
    event = api.get(f"/v1/events/{event_id}").json()
    assert (event["name"], event["data"]) == ("test/greet", {"name": "form"})
    watched.shot("events")

    link.click()
    expect(page.locator("#event-title")).to_have_text("test/greet")
    expect(page.locator("#event-runs tbody tr")).to_have_count(1)
    watched.shot("event")


def test_functions_show_triggers_and_options(server: LiveServer, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{server.url}/#/functions")
    echo = page.locator('[data-function-id="echo"]')
    expect(echo).to_contain_text("test/echo")
    expect(echo).to_contain_text("event.name != ''")
    expect(page.locator('[data-function-id="flaky"]')).to_contain_text("retries3")
    expect(page.locator('[data-function-id="hourly"]')).to_contain_text("0 * * * *")
    expect(page.locator('[data-function-id="hourly"]')).to_contain_text("Europe/Paris")
    watched.shot("functions")


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
    echo_event = api.get(f"/v1/runs/{echo_id}").json()["event_ids"][0]
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
        expect(to_function).to_have_attribute("href", f"#/runs?function={encoded}")
        to_function.click()
        expect(page.locator("#function-filter")).to_have_value(odd_ids.PARENT)
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
