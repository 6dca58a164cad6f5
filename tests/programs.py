"""Random function programs, a reference model of how they must end, and their interpreter.

A program is a list of blocks: steps that fail N times (retriably or not), parallel
groups, sleeps, waits for an event (delivered, or left to time out), steps whose
StepError the function catches, and failures of the code outside steps. `model` says, for
each program, how every step and the run must end; tests/test_semantics_property.py runs
programs in one process, and with worker processes killed under them.

Failures are decided by the attempt numbers stepstone hands the code (`ctx.attempt`), not
by counting calls: a handler cut short by a kill runs again with the same attempt, and the
model must not care.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from hypothesis import strategies as st

import stepstone


@dataclass(frozen=True)
class StepSpec:
    id: str
    fail_times: int
    non_retriable: bool
    caught: bool


@dataclass(frozen=True)
class WaitSpec:
    index: int
    delivered: bool  # the driver sends the event once the run waits; else the wait times out


@dataclass(frozen=True)
class Program:
    retries: int
    blocks: list[Any]  # StepSpec | list[StepSpec] (parallel) | float (a sleep) | WaitSpec
    outer_failures: int


@dataclass
class Expected:
    status: str
    steps: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (status, attempts)
    output: list[str] | None = None
    attempt: int = 0


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
        if isinstance(block, WaitSpec):
            output.append(f"wait{block.index}-{'got' if block.delivered else 'timeout'}")
            continue
        group = block if isinstance(block, list) else [block]
        while True:  # one invocation reaching this group
            for spec in group:
                if state.get(spec.id) in ("completed", "failed"):
                    continue
                attempts[spec.id] = attempts.get(spec.id, 0) + 1
                if attempts[spec.id] > spec.fail_times:
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


@st.composite
def wait_specs(draw: st.DrawFn) -> WaitSpec:
    return WaitSpec(index=next(_counter), delivered=draw(st.booleans()))


blocks = st.one_of(
    step_specs(),
    st.lists(step_specs(), min_size=2, max_size=3),
    st.just(0.01),
    wait_specs(),
)
programs = st.builds(
    Program,
    retries=st.integers(0, 2),
    blocks=st.lists(blocks, min_size=1, max_size=5),
    outer_failures=st.integers(0, 3),
)

SIGNAL = "model/signal"
WAIT_TIMEOUT = 0.05  # of a wait whose event never comes
DELIVERED_TIMEOUT = "60s"  # of a wait the driver answers: long past any kill's delay


def to_data(program: Program) -> dict[str, Any]:
    """A program as JSON-able event data (for worker processes to interpret)."""

    def block_data(block: Any) -> Any:
        if isinstance(block, float):
            return {"sleep": block}
        if isinstance(block, WaitSpec):
            return {"wait": asdict(block)}
        if isinstance(block, list):
            return {"parallel": [asdict(spec) for spec in block]}
        return {"step": asdict(block)}

    return {
        "retries": program.retries,
        "blocks": [block_data(block) for block in program.blocks],
        "outer_failures": program.outer_failures,
    }


def from_data(data: dict[str, Any]) -> Program:
    def block_of(item: dict[str, Any]) -> Any:
        if "sleep" in item:
            return float(item["sleep"])
        if "wait" in item:
            return WaitSpec(**item["wait"])
        if "parallel" in item:
            return [StepSpec(**spec) for spec in item["parallel"]]
        return StepSpec(**item["step"])

    return Program(
        retries=data["retries"],
        blocks=[block_of(item) for item in data["blocks"]],
        outer_failures=data["outer_failures"],
    )


def delivered_waits(program: Program) -> set[str]:
    """The step ids of the waits whose event the driver sends once the run waits."""
    return {f"wait{b.index}" for b in program.blocks if isinstance(b, WaitSpec) and b.delivered}


def signal_for(key: str, wait_step: str) -> dict[str, Any]:
    """The event that answers the wait `wait_step` of the run whose trigger carries `key`."""
    return {"name": SIGNAL, "data": {"key": key, "wait": wait_step}}


Record = Callable[[stepstone.Context, str], None]  # a handler call: its ctx and step id


async def interpret(ctx: stepstone.Context, program: Program, record: Record) -> list[str]:
    """The function body of `program`; `record` is told of every handler call."""

    def handler_for(spec: StepSpec) -> Callable[[], str]:
        def handler() -> str:
            record(ctx, spec.id)
            if ctx.attempt < spec.fail_times:  # inside a handler: the step's attempt
                if spec.non_retriable:
                    raise stepstone.NonRetriableError(f"{spec.id} refused")
                raise ValueError(f"{spec.id} attempt {ctx.attempt}")
            return f"{spec.id}-ok"

        return handler

    output = []
    for index, block in enumerate(program.blocks):
        if isinstance(block, float):
            await ctx.step.sleep(f"sleep{index}", block)
            continue
        if isinstance(block, WaitSpec):
            step_id = f"wait{block.index}"
            got = await ctx.step.wait_for_event(
                step_id,
                event=SIGNAL,
                timeout=DELIVERED_TIMEOUT if block.delivered else WAIT_TIMEOUT,
                if_=f"async.data.key == event.data.key && async.data.wait == '{step_id}'",
            )
            output.append(f"{step_id}-{'timeout' if got is None else 'got'}")
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
    if ctx.attempt < program.outer_failures:  # outside steps: the function's attempt
        raise RuntimeError(f"outside steps, attempt {ctx.attempt}")
    return output


def check_run(run: stepstone.Run, program: Program, *, killed: bool = False) -> list[str]:
    """How `run` differs from what the model says `program` must do (empty: it agrees).

    `killed`: workers may have been killed under the run. A step the model leaves open
    (cancelled) when another step's failure ends the run may then be attempted again:
    killed between saving those steps and writing the run's end, the worker leaves the
    run to another, whose invocation starts the retries that are due (it cannot know
    that the function is about to fail) before the failure is handed back again."""
    expected = model(program)
    problems = []
    if run.status != expected.status:
        problems.append(f"ended {run.status}, not {expected.status}: {run.error}")
    for step_id, (status, attempts) in expected.steps.items():
        saved = run.step(step_id)
        if killed and status == "cancelled" and saved.attempts >= attempts:
            continue
        if (saved.status.value, saved.attempts) != (status, attempts):
            problems.append(
                f"step {step_id}: {saved.status.value} after {saved.attempts} attempts, not "
                f"{status} after {attempts}"
            )
    if expected.status == "completed":
        if run.output != expected.output:
            problems.append(f"output {run.output} != {expected.output}")
        if run.attempt != expected.attempt:
            problems.append(f"attempt {run.attempt} != {expected.attempt}")
    elif run.error is None:
        problems.append("failed without an error")
    return [f"run {run.id}: {p} ({program})" for p in problems]
