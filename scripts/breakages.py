"""Deliberately broken builds, to show that the reliability tests can fail.

Each breakage is a few exact text replacements in the source. `python scripts/breakages.py`
copies the checkout for each one, applies it to the copy (never to the checkout), runs the
chaos and kill tests there, and prints which of them caught it. It exits non-zero if a
breakage no longer applies (the code it changes moved: update it here) or if no test
caught one.

    python scripts/breakages.py [--only NAME] [--list]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQLITE_SQL = "src/stepstone/store/sql/queries.sql"
POSTGRES_SQL = "src/stepstone/store/sql/postgres/queries.sql"

# the process-level tests that kill and pause workers, and the store's lease contract
TESTS = [
    "tests/test_chaos.py",
    "tests/test_semantics_property.py::test_engine_agrees_with_the_model_while_workers_are_killed",
    "tests/test_crash_sqlite.py",
    "tests/test_postgres_scale.py::test_a_killed_worker_s_runs_finish_elsewhere_without_rerunning_steps",
    "tests/test_postgres_scale.py::test_a_paused_worker_cannot_write_for_runs_it_lost",
    "tests/test_postgres_scale.py::test_workers_survive_a_database_restart",
    "tests/test_store_contract.py::test_renew_extends_live_leases_and_reports_lost_ones",
    "tests/test_store_contract.py::test_a_refused_write_among_concurrent_ones_undoes_nothing_else",
]


@dataclass(frozen=True)
class Breakage:
    name: str
    what: str
    edits: tuple[tuple[str, str, str], ...]  # (file, exact old text, new text)


BREAKAGES = [
    Breakage(
        "replay-reruns-steps",
        "a replay runs a finished step's handler again instead of returning its result",
        (
            (
                "src/stepstone/executor_run.py",
                # step.run's replay, on the loop and on a def function's thread
                "        if prior.status is StepStatus.COMPLETED:\n"
                "            return True, convert(prior.output, output_type)",
                "        if prior.status is StepStatus.COMPLETED and False:\n"
                "            return True, convert(prior.output, output_type)",
            ),
        ),
    ),
    Breakage(
        "no-save-fence",
        "a step is saved whatever fencing token the run's lease carries",
        (
            (
                SQLITE_SQL,
                "FROM jobs WHERE run_id = :run_id AND fence = :fence\nON CONFLICT",
                "FROM jobs WHERE run_id = :run_id AND (fence = :fence OR 1 = 1)\nON CONFLICT",
            ),
            (
                SQLITE_SQL,
                "    AND j.fence = json_extract(r.value, '$[1]')\n",
                "    AND (j.fence = json_extract(r.value, '$[1]') OR 1 = 1)\n",
            ),
            (
                POSTGRES_SQL,
                "FROM jobs WHERE run_id = :run_id AND fence = :fence FOR SHARE\n",
                "FROM jobs WHERE run_id = :run_id AND (fence = :fence OR true) FOR SHARE\n",
            ),
            (
                POSTGRES_SQL,
                "AND j.fence = (r->>1)::integer\n",
                "AND (j.fence = (r->>1)::integer OR true)\n",
            ),
        ),
    ),
    Breakage(
        "start-after-lease",
        "a worker starts a step's handler though its lease ran out by its own clock",
        (
            (
                "src/stepstone/executor_run.py",
                "            if self._lease_held is not None and not self._lease_held():\n"
                "                await self._renew_or_stop()\n",
                "            if False:\n                await self._renew_or_stop()\n",
            ),
            (
                "src/stepstone/executor_run.py",
                "            if self._lease_held is not None and not self._lease_held():\n"
                "                _on_loop(self._renew_or_stop(), loop)\n",
                "            if False:\n                _on_loop(self._renew_or_stop(), loop)\n",
            ),
            (
                "src/stepstone/executor_run.py",
                "        if self._lease_held is not None and not self._lease_held():\n"
                "            self.stop(",
                "        if False:\n            self.stop(",
            ),
        ),
    ),
    Breakage(
        "run-ends-twice",
        "a worker that lost its lease still writes the run's end",
        (
            (
                "src/stepstone/store/scripts/run_end.py",
                "if ended.rowcount == 0:\n",
                "if ended.rowcount == 0 and False:\n",
            ),
            (
                "src/stepstone/store/merges.py",
                "if end.lease.run_id not in ended:\n",
                "if end.lease.run_id not in ended and False:\n",
            ),
        ),
    ),
    Breakage(
        "merged-saves-lost-lease",
        "steps checkpointed together in one statement are not checked against their leases",
        (
            (
                "src/stepstone/store/merges.py",
                "if cursor.rowcount != expected:\n",
                "if cursor.rowcount != expected and False:\n",
            ),
        ),
    ),
    Breakage(
        "renew-lost-lease",
        "a renewal extends a lease whatever its fencing token, so a lost one looks held",
        (
            (
                SQLITE_SQL,
                "UPDATE jobs SET available_at = :until\n"
                "WHERE owner IS NOT NULL AND (run_id, fence) IN (\n"
                "    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')",
                "UPDATE jobs SET available_at = :until\n"
                "WHERE owner IS NOT NULL AND run_id IN (\n"
                "    SELECT json_extract(value, '$[0]')",
            ),
            (
                POSTGRES_SQL,
                "    WHERE owner IS NOT NULL AND (run_id, fence) IN (\n"
                "        SELECT r->>0, (r->>1)::integer"
                " FROM unnest(ARRAY(SELECT json_array_elements(:leases::json))) AS r\n"
                "    )\n    FOR UPDATE SKIP LOCKED",
                "    WHERE owner IS NOT NULL AND run_id IN (\n"
                "        SELECT r->>0 FROM unnest(ARRAY(SELECT json_array_elements(:leases::json)))"
                " AS r\n"
                "    )\n    FOR UPDATE SKIP LOCKED",
            ),
        ),
    ),
]


class NoLongerApplies(Exception):
    pass


def broken_copy(breakage: Breakage | None, into: Path) -> Path:
    """A copy of the checkout's sources and tests in `into`, with `breakage` applied."""
    for part in ("src", "tests", "examples", "pyproject.toml"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, into / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / part)
    for file, old, new in breakage.edits if breakage else ():
        path = into / file
        text = path.read_text()
        if text.count(old) != 1:
            raise NoLongerApplies(
                f"{breakage.name if breakage else ''}: {file} holds {text.count(old)} copies of "
                f"{old.strip()!r} (one expected): the code moved; update scripts/breakages.py"
            )
        path.write_text(text.replace(old, new))
    return into


def run_tests(copy: Path, tests: list[str]) -> tuple[list[str], str]:
    """The tests that failed in `copy`, and how the first of them failed."""
    env = {**os.environ, "PYTHONPATH": f"{copy / 'src'}{os.pathsep}{copy}"}
    env.pop("STEPSTONE_CHAOS", None)  # the short chaos run is enough to catch a breakage
    # the copy's stepstone, not the checkout's editable install, must be the one imported
    where = subprocess.run(
        [sys.executable, "-c", "import stepstone; print(stepstone.__file__)"],
        env=env,
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(copy)):
        raise RuntimeError(f"the copy imports stepstone from {where}, not from {copy}")
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *tests],
        env=env,
        cwd=copy,
        capture_output=True,
        text=True,
    )
    failed = re.findall(r"^FAILED (\S+)", process.stdout, re.MULTILINE)
    why = re.search(r"^E +(AssertionError: .{0,240})", process.stdout, re.MULTILINE)
    return failed, why.group(1) if why else process.stdout[-3000:] + process.stderr[-2000:]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run one breakage (and not the real code)")
    parser.add_argument("--list", action="store_true", help="list the breakages")
    parser.add_argument(
        "--check", action="store_true", help="only check that every breakage still applies"
    )
    parser.add_argument("--keep", action="store_true", help="keep the copies")
    args = parser.parse_args(argv)
    if args.list:
        for breakage in BREAKAGES:
            print(f"{breakage.name}: {breakage.what}")
        return 0
    chosen = [b for b in BREAKAGES if args.only in (None, b.name)]
    if not chosen:
        print(f"no breakage is named {args.only!r}", file=sys.stderr)
        return 2
    if args.check:
        for breakage in chosen:
            with tempfile.TemporaryDirectory(prefix="stepstone-check-") as work:
                try:
                    broken_copy(breakage, Path(work))
                except NoLongerApplies as exc:
                    print(exc, file=sys.stderr)
                    return 2
        print(f"all {len(chosen)} breakages apply")
        return 0
    rows: list[tuple[str, list[str], float]] = []
    bad = 0
    # the real code first: the tests must pass on it, or catching a breakage means nothing
    for breakage in ([None] if args.only is None else []) + chosen:
        name = breakage.name if breakage else "(the real code)"
        work = Path(tempfile.mkdtemp(prefix=f"stepstone-{breakage.name if breakage else 'real'}-"))
        started = time.monotonic()
        try:
            failed, why = run_tests(broken_copy(breakage, work), TESTS)
        except NoLongerApplies as exc:
            print(exc, file=sys.stderr)
            return 2
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        rows.append((name, failed, time.monotonic() - started))
        expected = breakage is None
        if expected != (not failed):
            bad += 1
        print(f"{name}: {len(failed)} test(s) failed", flush=True)
        if failed:
            print(f"  first: {why}", flush=True)
    print("\nbreakages (each applied to a copy of the source), and the tests that caught them:")
    for name, failed, seconds in rows:
        if name.startswith("("):
            verdict = "FAILED" if failed else "passes"
        else:
            verdict = "CAUGHT" if failed else "NOT CAUGHT"
        caught_by = ", ".join(f.split("::")[-1] for f in failed)
        print(f"  {name:22} {verdict:10} {seconds:5.0f}s  {caught_by}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
