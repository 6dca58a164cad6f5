"""Random function programs against a reference model of the semantics (hypothesis).

A program is a list of blocks: steps that fail N times (retriably or not), parallel
groups, sleeps, steps whose StepError the function catches, and failures of the code
outside steps. The model says, for each program, how every step and the run must end;
the real engine must agree, and each handler must have run exactly `attempts` times.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stepstone


@dataclass(frozen=True)
class StepSpec:
    id: str
    fail_times: int
    non_retriable: bool
    caught: bool


@dataclass(frozen=True)
class Program:
    retries: int
    blocks: list[Any]  # StepSpec | list[StepSpec] (parallel) | float (a sleep)
    outer_failures: int


@dataclass
class Expected:
    status: str
    steps: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (status, attempts)
    output: list[str] | None = None
    attempt: int = 0


def _fails(spec: StepSpec, attempt: int) -> bool:
    """Whether the step's handler raises on its `attempt`-th call (1-based)."""
    return attempt <= spec.fail_times


def model(program: Program) -> Expected:
    """Simulate invocations: each one starts every unfinished step of the group it reaches
    (one attempt each, in parallel), then awaits them in order; a step still to be retried
    ends the invocation, an uncaught failed step ends the run."""
    expected = Expected(status="completed")
    attempts: dict[str, int] = {}
    state: dict[str, str] = {}
    output: list[str] = []
    max_attempts = program.retries + 1
    for block in program.blocks:
        if isinstance(block, float):
            continue
        group = block if isinstance(block, list) else [block]
        while True:  # one invocation reaching this group
            for spec in group:
                if state.get(spec.id) in ("completed", "failed"):
                    continue
                attempts[spec.id] = attempts.get(spec.id, 0) + 1
                if not _fails(spec, attempts[spec.id]):
                    state[spec.id] = "completed"
                elif spec.non_retriable or attempts[spec.id] >= max_attempts:
                    state[spec.id] = "failed"
                else:
                    state[spec.id] = "retrying"
            suspended = False
            for spec in group:
                if state[spec.id] == "retrying":
                    suspended = True
                    break
                if state[spec.id] == "failed" and not spec.caught:
                    expected.status = "failed"
                    # the run's end closes the steps it left open (a retry not yet made)
                    closed = {k: "cancelled" if v == "retrying" else v for k, v in state.items()}
                    expected.steps = {k: (closed[k], attempts[k]) for k in state}
                    return expected
            if not suspended:
                break
        for spec in group:
            output.append(f"{spec.id}-ok" if state[spec.id] == "completed" else f"{spec.id}-caught")
    expected.steps = {k: (state[k], attempts[k]) for k in state}
    if program.outer_failures > program.retries:
        expected.status = "failed"
        expected.attempt = program.retries
        return expected
    expected.attempt = program.outer_failures
    expected.output = output
    return expected


_counter = iter(range(10**9))


@st.composite
def step_specs(draw: st.DrawFn) -> StepSpec:
    return StepSpec(
        id=f"s{next(_counter)}",
        fail_times=draw(st.integers(0, 3)),
        non_retriable=draw(st.booleans()),
        caught=draw(st.booleans()),
    )


blocks = st.one_of(
    step_specs(),
    st.lists(step_specs(), min_size=2, max_size=3),
    st.just(0.01),
)
programs = st.builds(
    Program,
    retries=st.integers(0, 2),
    blocks=st.lists(blocks, min_size=1, max_size=5),
    outer_failures=st.integers(0, 3),
)


def build_app(program: Program, calls: dict[str, int], url: str) -> stepstone.App:
    app = stepstone.App("model", database=url, backoff=lambda attempt: 0.0)
    invocations = {"n": 0}

    def handler_for(spec: StepSpec) -> Any:
        def handler() -> str:
            calls[spec.id] = calls.get(spec.id, 0) + 1
            if calls[spec.id] <= spec.fail_times:
                if spec.non_retriable:
                    raise stepstone.NonRetriableError(f"{spec.id} refused")
                raise ValueError(f"{spec.id} attempt {calls[spec.id]}")
            return f"{spec.id}-ok"

        return handler

    @app.function(id="program", trigger="model/run", retries=program.retries)
    async def run_program(ctx: stepstone.Context) -> Any:
        output = []
        for index, block in enumerate(program.blocks):
            if isinstance(block, float):
                await ctx.step.sleep(f"sleep{index}", block)
                continue
            group = block if isinstance(block, list) else [block]
            started = [(spec, ctx.step.run(spec.id, handler_for(spec))) for spec in group]
            for spec, future in started:
                try:
                    output.append(await future)
                except stepstone.StepError:
                    if not spec.caught:
                        raise
                    output.append(f"{spec.id}-caught")
        invocations["n"] += 1
        if invocations["n"] <= program.outer_failures:
            raise RuntimeError(f"outside steps, invocation {invocations['n']}")
        return output

    return app


async def execute(program: Program, url: str) -> tuple[stepstone.Run, dict[str, int]]:
    calls: dict[str, int] = {}
    app = build_app(program, calls, url)
    try:
        async with app.worker(poll_interval=0.01):
            [event_id] = await app.send({"name": "model/run"})
            [run] = await app.runs_for_event(event_id)
            return await app.wait_for_run(run.id, timeout=30), calls
    finally:
        await app.close()


# programs per store: `make chaos` (STEPSTONE_CHAOS=long) runs over 1,000 in all
LONG = os.environ.get("STEPSTONE_CHAOS") == "long"
EXAMPLES = {"memory": 400, "sqlite": 350, "postgres": 350} if LONG else {"memory": 40}
EXAMPLES.setdefault("sqlite", 8)
EXAMPLES.setdefault("postgres", 8)


@pytest.fixture(params=list(EXAMPLES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int]:
    """A database URL shared by the test's programs (each has its own runs), and how many
    programs to try on it."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'model.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    return url, EXAMPLES[request.param]


@pytest.mark.timeout(1800 if LONG else 300)
def test_engine_agrees_with_the_model(store: tuple[str, int]) -> None:
    url, examples = store

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(programs)
    def agrees(program: Program) -> None:
        check_program(program, url)

    agrees()


def check_program(program: Program, url: str) -> None:
    run, calls = asyncio.run(execute(program, url))
    expected = model(program)
    assert run.status == expected.status, (run.error, program)
    for step_id, (status, attempts) in expected.steps.items():
        saved = run.step(step_id)
        assert (saved.status.value, saved.attempts) == (status, attempts), (step_id, program)
        assert calls.get(step_id, 0) == attempts, (step_id, calls, program)  # never re-run
    if expected.status == "completed":
        assert run.output == expected.output
        assert run.attempt == expected.attempt
    else:
        assert run.error is not None
