"""The send command: an event into the app's database, or to a running server over
HTTP; with --wait, the outputs of the runs it starts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import quote

import click
import httpx
from rich.text import Text

from ..app import App
from ..records import Run, RunStatus
from . import render
from .options import (
    DATABASE_HELP,
    announce,
    closing,
    console,
    database_name,
    err,
    json_option,
    open_app,
    run_async,
    sqlite_file,
)

NO_WORKER_AFTER = 2.0  # seconds a sent event's runs may stay queued before send warns


@click.command()
@click.argument("target", nargs=-1, required=True, metavar="[MODULE:APP] NAME")
@click.option("--database", "-d", default=None, help=DATABASE_HELP)
@click.option("--data", default="{}", help="The event's data, a JSON object.")
@click.option("--id", "event_id", default=None, help="Idempotency key of the event.")
@click.option(
    "--url",
    default=None,
    help="Send to a running server (stepstone dev / start) instead, e.g. http://127.0.0.1:8288; "
    "then MODULE:APP is not needed.",
)
@click.option(
    "--event-key",
    envvar="STEPSTONE_EVENT_KEY",
    default="dev",
    show_default=True,
    help="With --url: the key of POST /e/{key} (any key works with stepstone dev).",
)
@click.option(
    "--api-token",
    envvar="STEPSTONE_API_TOKEN",
    default=None,
    help="With --url --wait: the REST API's token (stepstone start).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for the runs the event starts and print their outputs; exit 1 unless all completed.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds --wait waits.",
)
@json_option
def send(
    target: tuple[str, ...],
    database: str | None,
    data: str,
    event_id: str | None,
    url: str | None,
    event_key: str,
    api_token: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Send an event NAME and print its id and the runs it started."""
    if url is None and len(target) != 2:
        raise click.UsageError("write: stepstone send MODULE:APP NAME (or --url URL NAME)")
    if url is not None and len(target) != 1:
        raise click.UsageError("with --url, give only the NAME: stepstone send --url URL NAME")
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"id\": 1}'", param_hint="--data")
    event = {"name": target[-1], "data": payload, "id": event_id}
    if url is not None:
        result = _send_http(url, event, event_key, api_token, wait, timeout)
    else:
        app = open_app(target[0], database)
        path = sqlite_file(app.database_url)
        announce(app)
        if path is not None and not path.exists():
            err.print(
                Text(
                    f"warning: {path} does not exist: sending creates a new, empty database "
                    "there; workers elsewhere see this event only if they use this file",
                    style="yellow",
                ),
                soft_wrap=True,
            )
        result = run_async(closing(app, _send_local(app, event, wait, timeout)))
    _print_sent(result, as_json)
    ended = [r["status"] for item in result for r in item.get("results", [])]
    if any(status != RunStatus.COMPLETED.value for status in ended):
        sys.exit(1)  # --wait: a run did not complete (its error is printed above)


async def _send_local(
    app: App, event: dict[str, Any], wait: bool, timeout: float
) -> list[dict[str, Any]]:
    ids = await app.send(event)
    sent: list[dict[str, Any]] = []
    runs: list[Run] = []
    for event_id in ids:
        found = await app.runs_for_event(event_id)
        runs += found
        sent.append({"event_id": event_id, "runs": [r.id for r in found]})
    if wait:
        with err.status(f"waiting for {len(runs)} run(s) to end"):
            for item in sent:
                item["results"] = [
                    _result(await _wait_or_timeout(app, run_id, timeout)) for run_id in item["runs"]
                ]
    elif runs:
        await _warn_if_unclaimed(app, [r.id for r in runs])
    return sent


async def _wait_or_timeout(app: App, run_id: str, timeout: float) -> Run:
    try:
        return await app.wait_for_run(run_id, timeout=timeout)
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from None


async def _warn_if_unclaimed(app: App, run_ids: list[str]) -> None:
    """Say so when no worker takes the new runs at once: the usual reason is that none
    runs on this database (another directory's default file, a typo in the URL)."""
    deadline = time.monotonic() + NO_WORKER_AFTER
    while time.monotonic() < deadline:
        runs = [await app.get_run(run_id, history=False) for run_id in run_ids]
        if any(r is None or r.status is not RunStatus.QUEUED for r in runs):
            return
        await asyncio.sleep(0.05)
    err.print(
        Text(
            f"warning: no worker has taken run {run_ids[0]} within {NO_WORKER_AFTER:g} s; "
            f"is a worker running on {database_name(app)}? Start one with "
            "`stepstone worker MODULE:APP` on the same database (a function's flow control "
            "may also delay its runs)",
            style="yellow",
        ),
        soft_wrap=True,
    )


def _result(run: Run) -> dict[str, Any]:
    return {"run_id": run.id, "status": run.status.value, "output": run.output, "error": run.error}


def _send_http(
    url: str,
    event: dict[str, Any],
    event_key: str,
    api_token: str | None,
    wait: bool,
    timeout: float,
) -> list[dict[str, Any]]:
    base = url.rstrip("/")
    headers = {"authorization": f"Bearer {api_token}"} if api_token else {}
    err.print(Text.assemble(("server ", "dim"), base), soft_wrap=True)
    try:
        with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
            answer = http.post(
                f"/e/{quote(event_key, safe='')}", json={k: v for k, v in event.items() if v}
            )
            _check(answer)
            sent = []
            for event_id in answer.json()["ids"]:
                found = http.get(f"/v1/events/{quote(event_id, safe='')}")
                _check(found)
                run_ids = [r["id"] for r in found.json().get("runs", [])]
                item: dict[str, Any] = {"event_id": event_id, "runs": run_ids}
                if wait:
                    with err.status(f"waiting for {len(run_ids)} run(s) to end"):
                        item["results"] = [_poll_http(http, r, timeout) for r in run_ids]
                sent.append(item)
            return sent
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from None


def _poll_http(http: httpx.Client, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/v1/runs/{quote(run_id, safe='')}")
        _check(answer)
        run = answer.json()
        if RunStatus(run["status"]).is_final:
            keys = ("status", "output", "error")
            return {"run_id": run_id, **{k: run.get(k) for k in keys}}
        if time.monotonic() > deadline:
            raise click.ClickException(f"run {run_id} is still {run['status']} after {timeout}s")
        time.sleep(0.05)


def _check(answer: httpx.Response) -> None:
    if answer.is_success:
        return
    try:
        message = answer.json().get("error") or answer.text
    except ValueError:
        message = answer.text
    raise click.ClickException(f"the server answered {answer.status_code}: {message}")


def _print_sent(sent: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        render.print_json(console, sent)
        return
    for item in sent:
        runs = ", ".join(item["runs"]) or "none (no function is triggered by it)"
        console.print(Text(f"event {item['event_id']}: runs {runs}"), soft_wrap=True)
        for result in item.get("results", []):
            line = Text(f"  run {result['run_id']} ")
            ok = result["status"] == "completed"
            line.append(result["status"], style="green" if ok else "red")
            if result.get("error"):
                error = result["error"]
                line.append(f": {error.get('name')}: {error.get('message')}")
            else:
                line.append(f": {json.dumps(result['output'], ensure_ascii=False)}")
            console.print(line, soft_wrap=True)
