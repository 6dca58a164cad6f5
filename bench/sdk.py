"""Workload 7: a function of 10 trivial steps run on stepstone (SQLite) three ways: as a
native stepstone function, and as an app written with each official SDK (Python on
FastAPI, npm on Express: bench/sdk_apps/) that stepstone calls over HTTP; and, beside
them, one HTTP round trip on loopback as the floor of any step served over HTTP.

Each kind gets its own database and its own stepstone dev server (uvicorn, with the
worker in the same process, as `stepstone dev` runs). The SDK apps run in their own
processes with the pinned SDKs of tests/sdk/harness.py (the same cache as the tests) and
sync by a PUT. Events are sent with `App.send` in the server's process for every kind, so
the kinds differ only in how a step is run.

- latency: with the worker idle, one event at a time: event sent -> first step running
  (the first step returns the wall time it ran at) and -> run completed;
- throughput: `runs` events sent in one call; steps/s until every run is completed, and
  the CPU time each step took in stepstone's process (worker, store, HTTP server) and in
  the SDK app's (less sensitive than wall time to other work on the machine);
- http_rtt: POST a small JSON body to a bare ASGI app on uvicorn (bench/trivial_http.py)
  over one kept-alive connection, with a minimal client on asyncio streams (the floor)
  and with httpx (the client stepstone's worker calls SDK apps with).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

import stepstone
from stepstone.server import bind, make_server

from .common import Sizes, free_port, latency_summary, throughput
from .intake import _Connection, _http_once
from .stepstone_runner import _wait_all_ended

KINDS = ("native", "py", "js")
WORKLOADS = [f"sdk_{kind}" for kind in KINDS] + ["http_rtt"]
EVENT = "bench/ten-steps"
FUNCTION = "ten-steps"
APP_ID = "bench"
APPS = Path(__file__).resolve().parent / "sdk_apps"
SOURCES = {"py": "ten_steps.py", "js": "ten_steps.cjs"}


async def _same(i: int) -> int:
    return i


async def _now() -> float:
    return time.time()


def define_native(app: stepstone.App, steps: int) -> None:
    """The native twin of bench/sdk_apps/ten_steps.py and ten_steps.cjs."""

    @app.function(id=FUNCTION, trigger=EVENT)
    async def ten_steps(ctx: stepstone.Context) -> dict[str, Any]:
        count = int(ctx.event.data.get("steps", steps))
        first = await ctx.step.run("s0", _now)
        for i in range(1, count):
            await ctx.step.run(f"s{i}", _same, i)
        return {"first": first, "steps": count}


@contextlib.asynccontextmanager
async def _dev_server(app: stepstone.App) -> AsyncIterator[str]:
    """stepstone's dev HTTP server and a worker for `app`, in this event loop; its URL."""
    server = make_server(app, dev=True)
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    async with app.worker():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            await task
            sock.close()


@contextlib.asynccontextmanager
async def _sdk_app(kind: str, server_url: str, steps: int) -> AsyncIterator[int]:
    """The SDK app of `kind`, started with the tests' harness and synced; its process id."""
    from tests.sdk import harness

    workdir = Path(tempfile.mkdtemp(prefix=f"stepstone-bench-{kind}-app-"))
    sdk = await asyncio.to_thread(
        harness.start_app,
        kind,
        server_url,
        workdir,
        app_id=APP_ID,
        source=str(APPS / SOURCES[kind]),
        extra_env={"BENCH_STEPS": str(steps)},
    )
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.put(sdk.url)  # the app POSTs /fn/register to the server
        if answer.status_code != 200 or "error" in answer.text:
            raise RuntimeError(f"the {kind} app did not sync: {answer.status_code} {answer.text}")
        yield sdk.process.pid
    finally:
        await asyncio.to_thread(sdk.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) used so far by this process, or by process `pid`."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # utime and stime: fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one_run(app: stepstone.App, data: dict[str, Any]) -> tuple[float, stepstone.Run]:
    sent = time.time()
    [event_id] = await app.send({"name": EVENT, "data": data})
    runs = await app.runs_for_event(event_id)
    if len(runs) != 1:
        raise RuntimeError(f"{EVENT} started {len(runs)} runs")
    run = await app.wait_for_run(runs[0].id, timeout=60, poll=0.002)
    if run.status.value != "completed":
        raise RuntimeError(f"run {run.id} ended {run.status.value}: {run.error}")
    return sent, run


async def _latency(app: stepstone.App, samples: int, gap: float) -> dict[str, Any]:
    first: list[float] = []
    whole: list[float] = []
    for _ in range(samples):
        await asyncio.sleep(gap * (0.5 + random.random()))
        sent, run = await _one_run(app, {})
        first.append(run.output["first"] - sent)
        whole.append((run.ended_at or 0.0) - sent)
    return {"first_step": latency_summary(first), "run": latency_summary(whole)}


async def _throughput(
    app: stepstone.App, function_id: str, runs: int, steps: int, app_pid: int | None
) -> dict[str, Any]:
    cpu = _cpu_seconds(), _cpu_seconds(app_pid) if app_pid else 0.0
    start = time.perf_counter()
    for first in range(0, runs, 5000):
        await app.send([{"name": EVENT} for _ in range(min(5000, runs - first))])
    # polled every 50 ms: the poll's own queries count in stepstone's CPU, and an SDK
    # run of 1,000 runs takes minutes
    await _wait_all_ended(app, every=0.05)
    seconds = time.perf_counter() - start
    per_step = {
        "stepstone": (_cpu_seconds() - cpu[0]) / (runs * steps) * 1000,
        "app": ((_cpu_seconds(app_pid) - cpu[1]) if app_pid else 0.0) / (runs * steps) * 1000,
    }
    failed = await app.list_runs(status="failed", limit=1)
    if failed:
        raise RuntimeError(f"run {failed[0].id} failed: {failed[0].error}")
    completed = 0
    cursor: str | None = None
    while True:
        page = await app.list_runs(function_id=function_id, limit=1000, cursor=cursor)
        completed += sum(
            1 for run in page if isinstance(run.output, dict) and run.output["steps"] == steps
        )
        cursor = page.next_cursor
        if cursor is None:
            break
    if completed < runs:  # the latency samples and the warm-up ran fewer or other steps
        raise RuntimeError(f"{completed} of {runs} runs completed with {steps} steps")
    return {**throughput(runs, steps, seconds), "cpu_ms_per_step": per_step}


async def ten_steps(url: str, kind: str, sizes: Sizes) -> dict[str, Any]:
    """The 10-step function of `kind` ("native", "py", "js"): latency, then throughput."""
    steps = sizes.concurrent_steps
    function_id = FUNCTION if kind == "native" else f"{APP_ID}-{FUNCTION}"  # as the SDKs sync
    app = stepstone.App("bench", database=url)
    out: dict[str, Any] = {"kind": kind, "function_id": function_id}
    if kind == "native":
        define_native(app, steps)
    try:
        async with _dev_server(app) as server_url, contextlib.AsyncExitStack() as stack:
            app_pid = None
            if kind != "native":
                app_pid = await stack.enter_async_context(_sdk_app(kind, server_url, steps))
                out["sdk"] = _sdk_versions(kind)
            await _one_run(app, {"steps": 2})  # warm: imports, connections, the file
            out.update(await _latency(app, sizes.sdk_latency_samples, sizes.latency_gap))
            out.update(await _throughput(app, function_id, sizes.sdk_runs, steps, app_pid))
    finally:
        await app.close()
    return out


def _sdk_versions(kind: str) -> dict[str, str]:
    from tests.sdk import harness

    if kind == "py":
        return {"inngest (PyPI)": harness.PY_SDK_VERSION, "framework": "FastAPI"}
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"inngest (npm)": harness.JS_SDK_VERSION, "framework": "Express", "node": node}


async def http_round_trip(samples: int) -> dict[str, Any]:
    """One POST to a trivial app on loopback over a kept-alive connection, `samples` times
    with each client after a warm-up: seconds per round trip."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.trivial_http", str(port), env=_env()
    )
    body = json.dumps({"event": {"name": EVENT, "data": {}}, "steps": {}}).encode()
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):
                if (await _http_once(port, "GET", "/", b""))[0] == 200:
                    break
            await asyncio.sleep(0.05)
        conn = await _Connection.open(port)
        raw: list[float] = []
        try:
            for i in range(samples + samples // 10):
                start = time.perf_counter()
                status, _ = await conn.request("POST", "/api", body)
                if status != 200:
                    raise RuntimeError(f"the trivial app answered {status}")
                if i >= samples // 10:
                    raw.append(time.perf_counter() - start)
        finally:
            conn.close()
        timed: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(samples + samples // 10):
                start = time.perf_counter()
                answer = await client.post("/api", content=body)
                answer.raise_for_status()
                if i >= samples // 10:
                    timed.append(time.perf_counter() - start)
    finally:
        server.terminate()
        await server.wait()
    return {"raw": latency_summary(raw), "httpx": latency_summary(timed)}


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


async def run_all(fresh: Any, sizes: Sizes, workloads: list[str], rep: int = 0) -> dict[str, Any]:
    """The workloads, in an order rotated by repetition (the disk drifts); a failed one is
    reported in its result and does not stop the others."""
    shift = rep % max(1, len(workloads))
    results: dict[str, Any] = {}
    for name in workloads[shift:] + workloads[:shift]:
        try:
            if name == "http_rtt":
                results[name] = await http_round_trip(sizes.http_samples)
            else:
                results[name] = await ten_steps(fresh(name), name.removeprefix("sdk_"), sizes)
        except Exception as exc:  # one failed workload must not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return results
