"""Profile stepstone on one workload with py-spy and summarize where the time goes.

python -m bench.profile sequential|concurrent|latency [--rate 1000] [--gil]
    [--backend sqlite|postgres]

Runs one bench cell under `py-spy record --format raw` (all threads) and prints, per
thread, the share of samples in each function: self time and inclusive time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace

from . import pg
from .common import FULL

_LINE = re.compile(r":\d+\)")


def summarize(raw_path: str, top: int = 25, *, running_only: bool = True) -> str:
    """Self and inclusive shares per thread from py-spy's raw (collapsed) output.

    running_only: drop the main thread's samples outside its event loop (imports, setup),
    so the shares describe the workload itself."""
    per_thread: collections.Counter[str] = collections.Counter()
    own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with open(raw_path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            thread = re.sub(r"\s*\(?\d+\)?|0x[0-9a-f]+", "", frames[0]).strip()
            calls = [_LINE.sub(")", frame) for frame in frames[1:]]
            if (
                running_only
                and "MainThread" in thread
                and not any("BaseEventLoop._run_once" in call for call in calls)
            ):
                continue
            if any("importlib._bootstrap" in call for call in calls):
                continue
            per_thread[thread] += n
            if calls:
                own[thread][calls[-1]] += n
            for call in set(calls):
                inclusive[thread][call] += n
    total = sum(per_thread.values()) or 1
    out = []
    for thread, n in per_thread.most_common():
        out.append(f"== thread {thread}: {n} samples, {100 * n / total:.1f}% of all")
        if n / total < 0.02:
            continue
        out.append("  self:")
        out += [f"   {100 * k / n:5.1f}%  {name}" for name, k in own[thread].most_common(top)]
        out.append("  inclusive:")
        out += [f"   {100 * k / n:5.1f}%  {name}" for name, k in inclusive[thread].most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("workload", choices=["sequential", "concurrent", "latency"])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--keep", metavar="PATH", help="also copy py-spy's raw output here")
    args = parser.parse_args(argv)
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    workdir = tempfile.mkdtemp(prefix="stepstone-profile-")
    sizes = replace(
        FULL,
        sequential_steps=1000,
        concurrent_runs=3000,
        latency_samples=300,
        paired_floor=False,  # profile stepstone alone
    )
    with contextlib.ExitStack() as stack:
        spec = {
            "system": "stepstone",
            "backend": args.backend,
            "workloads": [args.workload],
            "sizes": sizes.to_dict(),
            "dir": workdir,
        }
        if args.backend == "postgres":
            handle = stack.enter_context(pg.cluster())
            if handle is None:
                raise SystemExit("PostgreSQL is not installed")
            spec["pg"] = handle.admin_url
        _record(pyspy, spec, workdir, args)


def _record(pyspy: str, spec: dict[str, object], workdir: str, args: argparse.Namespace) -> None:
    raw = os.path.join(workdir, "profile.raw")
    # --nonblocking: pausing the process to sample it hung py-spy on PostgreSQL cells here
    cmd = [pyspy, "record", "-r", str(args.rate), "-f", "raw", "-o", raw, "--threads"]
    cmd.append("--nonblocking")
    if args.gil:
        cmd.append("--gil")
    cmd += ["--", sys.executable, "-m", "bench.cell", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        print(result[-1] if result else proc.stderr[-2000:])
        print(summarize(raw, args.top))
        if args.keep:
            shutil.copyfile(raw, args.keep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
