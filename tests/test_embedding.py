"""The embedding recipes as documented (FastAPI in the README, Starlette in
docs/embedding.md), served by uvicorn in a real process: the worker in the lifespan, a
route that sends, and the dashboard and API mounted under /stepstone, opened in Chromium."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .docblocks import ROOT, module_block

CHROMIUM = os.environ.get("STEPSTONE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
RECIPES = [
    (ROOT / "README.md", "web.py", "web:api"),
    (ROOT / "docs" / "embedding.md", "web_starlette.py", "web_starlette:web"),
]


@pytest.fixture(params=RECIPES, ids=["fastapi", "starlette"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The recipe's module, as the page shows it, served by uvicorn: its base URL."""
    page, filename, target = request.param
    (tmp_path / filename).write_text(module_block(page, filename).text)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--port", "0", "--log-level", "info"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = ""
    try:
        for line in process.stdout:
            seen += line
            found = re.search(r"running on (http://\S+)", line, re.I)
            if found:
                break
        else:
            raise AssertionError(f"uvicorn did not start:\n{seen}")
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, seen + rest
    assert "Traceback" not in seen + rest, seen + rest


def _sign_up(http: httpx.Client, email: str) -> dict[str, Any]:
    """Through the app's own route; then the run, read through the mounted API."""
    answer = http.post("/signup", params={"email": email})
    assert answer.status_code == 200, answer.text
    event_id = answer.json()["event_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = http.get(f"/stepstone/v1/events/{event_id}").json()["runs"]
        if runs:
            run: dict[str, Any] = http.get(f"/stepstone/v1/runs/{runs[0]['id']}").json()
            if run["status"] == "completed":
                return run
        time.sleep(0.05)
    raise AssertionError(f"the run of event {event_id} did not complete")


def test_the_worker_runs_in_the_lifespan_and_a_route_sends(served: str) -> None:
    with httpx.Client(base_url=served, timeout=30) as http:
        run = _sign_up(http, "ada@example.com")
        assert run["output"] == "sent to ada@example.com"
        assert http.get("/stepstone/v1/functions").json()["functions"][0]["id"] == "welcome"
        # events can come in through the mounted intake as well
        event = {"name": "web/user.signed-up", "data": {"email": "eve@example.com"}}
        sent = http.post("/stepstone/e/dev", json=event)
        assert sent.status_code == 200, sent.text
        # the sub-path without its slash leads to the dashboard
        redirect = http.get("/stepstone", follow_redirects=False)
        assert redirect.status_code in (301, 307, 308)
        assert redirect.headers["location"].endswith("/stepstone/")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")
def test_the_dashboard_works_under_the_sub_path_in_a_browser(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with httpx.Client(base_url=served, timeout=30) as http:
        run = _sign_up(http, "grace@example.com")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(f"{served}/stepstone")  # no slash: it redirects
            assert page.url == f"{served}/stepstone/"
            expect(page.get_by_text(run["id"])).to_be_visible()
            page.get_by_text(run["id"]).click()
            expect(page.locator("main")).to_contain_text("send-email")
            expect(page.locator("main")).to_contain_text("sent to grace@example.com")
            page.goto(f"{served}/stepstone/#/functions")
            expect(page.locator("main")).to_contain_text("web/user.signed-up")
            requested = page.evaluate(
                "performance.getEntriesByType('resource').map((entry) => entry.name)"
            )
        finally:
            browser.close()
    assert problems == []
    assert requested and all("/stepstone/" in url for url in requested), requested
