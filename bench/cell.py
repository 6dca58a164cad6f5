"""One cell of the benchmark: one system on one database, some workloads, in its own process.

python -m bench.cell '{"system": ..., "backend": ..., "dir": ..., "pg": ..., ...}'
prints one line `RESULT {json}` at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from typing import Any

from .common import Sizes

MARK = "RESULT "


def _fresh(spec: dict[str, Any]) -> Any:
    counter = {"n": 0}

    def fresh(name: str) -> str:
        counter["n"] += 1
        tag = f"{spec['system']}_{name}_{spec.get('rep', 0)}_{counter['n']}"
        if spec["backend"] == "sqlite":
            return f"sqlite:///{os.path.join(spec['dir'], tag + '.db')}"
        import psycopg

        admin = spec["pg"]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{tag}"')
            conn.execute(f'CREATE DATABASE "{tag}"')
        return admin.rsplit("/", 1)[0] + "/" + tag

    return fresh


def run(spec: dict[str, Any]) -> dict[str, Any]:
    sizes = Sizes(**spec["sizes"])
    workloads: list[str] = spec["workloads"]
    fresh = _fresh(spec)
    system = spec["system"]
    if system == "stepstone":
        from . import stepstone_runner

        return asyncio.run(stepstone_runner.run_all(fresh, sizes, workloads))
    if system == "sdk":
        from . import sdk

        return asyncio.run(sdk.run_all(fresh, sizes, workloads, spec.get("rep", 0)))
    if system == "dbos":
        from . import dbos_runner

        return dbos_runner.run_all(fresh("dbos"), sizes, workloads)
    if system == "floor":
        from . import floor

        url = fresh("floor")
        on_sqlite = spec["backend"] == "sqlite"
        target = url[len("sqlite:///") :] if on_sqlite else url
        results: dict[str, Any] = {}
        if "sequential" in workloads:
            sequential = floor.sqlite_sequential if on_sqlite else floor.postgres_sequential
            results["sequential"] = sequential(target, sizes.sequential_steps)
        if "latency" in workloads:
            idle_commit = floor.sqlite_idle_commit if on_sqlite else floor.postgres_idle_commit
            results["latency"] = idle_commit(target, sizes.latency_samples, sizes.latency_gap)
        return results
    raise ValueError(f"unknown system {system!r}")


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        out: dict[str, Any] = {"ok": True, "results": run(spec)}
    except BaseException as exc:  # report, never hang the harness
        out = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(),
        }
    sys.stdout.write(MARK + json.dumps(out, default=str) + "\n")
    sys.stdout.flush()
    os._exit(0)  # DBOS and thread pools may keep non-daemon threads around


if __name__ == "__main__":
    main()
