"""An append-only ledger of step executions, kept outside the database, and its checks.

Worker processes append one line per event to one file opened with O_APPEND: a handler
started, ended or failed (with the run's attempt, the worker and a token naming this
execution), or the function was handed a step's result (with the token of the execution
that produced it); the chaos harness adds a line each time it resumes a stopped worker.
Appends of a line are atomic, so the file's order is the order in which
things happened, across processes, without comparing clocks.

The checks hold whatever the database says: a build that re-runs a finished step, or lets
a worker that lost its lease save over the result, leaves lines that prove it.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class Ledger:
    def __init__(self, path: str | Path, worker: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.worker = worker
        self._count = itertools.count()

    def _write(self, kind: str, run_id: str, step_id: str, attempt: int, token: str) -> None:
        line = f"{kind} {run_id} {step_id} {attempt} {self.worker} {token}\n"
        os.write(self._fd, line.encode())  # one write: appended whole

    def started(self, run_id: str, step_id: str, attempt: int) -> str:
        """Record a handler's start; returns the token naming this execution."""
        token = f"{self.worker}.{os.getpid()}.{next(self._count)}"
        self._write("start", run_id, step_id, attempt, token)
        return token

    def ended(self, run_id: str, step_id: str, attempt: int, token: str) -> None:
        self._write("end", run_id, step_id, attempt, token)

    def failed(self, run_id: str, step_id: str, attempt: int, token: str) -> None:
        self._write("fail", run_id, step_id, attempt, token)

    def seen(self, run_id: str, step_id: str, token: str) -> None:
        """Record that the function was handed the result of execution `token`."""
        self._write("seen", run_id, step_id, -1, token)

    def resumed(self, worker: str) -> None:
        """The harness's line: it is about to resume `worker`, stopped past its lease."""
        self._write("resume", "-", "-", -1, worker)


@dataclass
class Entry:
    kind: str
    run_id: str
    step_id: str
    attempt: int
    worker: str
    token: str


@dataclass
class Findings:
    executions: int = 0
    # handlers started after the hand-over by a worker stopped across it: it had decided
    # to run the step (its lease still held) before it stopped; their results are refused
    late_starts: int = 0
    violations: list[str] = field(default_factory=list)


def read(path: Path) -> list[Entry]:
    entries = []
    for line in path.read_text().splitlines():
        kind, run_id, step_id, attempt, worker, token = line.split()
        entries.append(Entry(kind, run_id, step_id, int(attempt), worker, token))
    return entries


def check(entries: list[Entry], saved: Mapping[tuple[str, str], str]) -> Findings:
    """Exactly once, from the ledger: `saved` maps (run, step) to the token in the result
    the database holds for it (steps that finished).

    No engine can stop a worker that is paused between deciding to run a handler and the
    handler's first line (a GC pause, SIGSTOP) from running it once resumed, after another
    worker took the run over; what it guarantees is that such a late execution's result is
    never saved nor handed to the function, and that no worker decides to run a step after
    its lease ran out (tests/test_crash_sqlite.py pauses a worker there on purpose). So a
    start after the hand-over is allowed only from a worker the harness resumed after the
    hand-over, and only if its result went nowhere."""
    findings = Findings()
    by_step: dict[tuple[str, str], list[tuple[int, Entry]]] = defaultdict(list)
    resumes: dict[str, list[int]] = defaultdict(list)  # worker -> positions of its resumes
    for position, entry in enumerate(entries):
        if entry.kind == "resume":
            resumes[entry.token].append(position)
            continue
        by_step[(entry.run_id, entry.step_id)].append((position, entry))
        findings.executions += entry.kind == "start"
    add = findings.violations.append
    for key, token in saved.items():
        lines = [e for _, e in by_step.get(key, [])]
        name = f"run {key[0]} step {key[1]}"
        ended = {e.token for e in lines if e.kind == "end"}
        if token not in ended:
            add(f"{name}: its saved result comes from no finished execution ({token})")
        handed = [e for e in lines if e.kind == "seen"]
        if {e.token for e in handed} - {token}:
            add(f"{name}: the function was handed a result other than the saved one")
    for key, timeline in by_step.items():
        first_seen = next((p for p, e in timeline if e.kind == "seen"), None)
        if first_seen is None:
            continue
        handed_over = {e.token for _, e in timeline if e.kind == "seen"}
        for position, later in timeline:
            if position < first_seen or later.kind != "start":
                continue
            paused_across = any(first_seen < r < position for r in resumes[later.worker])
            if paused_across and later.token not in handed_over:
                findings.late_starts += 1
                continue
            add(
                f"run {key[0]} step {key[1]}: ran again (attempt {later.attempt}, on "
                f"{later.worker}) after the function had been handed its result"
            )
    return findings
