"""python -m bench [--quick|--tiny] [--systems stepstone,dbos,floor,sdk] [--no-postgres]
[--no-extras] [--only backlog,dbwork,...]"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from rich.console import Console

from . import harness, report
from .common import FULL, QUICK, TINY

SYSTEMS = ["stepstone", "dbos", "floor", "sdk"]
# --only new: issue 21's workloads, and the async ones the `def` function is compared with
NEW = ["sequential", "concurrent", "concurrent_procs", *harness.REPEATED_NEW, *harness.ONCE_NEW]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, a few minutes")
    parser.add_argument("--tiny", action="store_true", help="a handful of steps (smoke test)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-extras", action="store_true", help="workloads 1-3 only")
    parser.add_argument(
        "--only",
        help="these workloads only, comma-separated (e.g. backlog,dbwork); new: those of issue 21",
    )
    parser.add_argument("--repetitions", type=int)
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    )
    args = parser.parse_args(argv)
    sizes, tag = (TINY, "tiny") if args.tiny else (QUICK, "quick") if args.quick else (FULL, "full")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if systems != SYSTEMS:  # a run of some systems keeps <mode>-latest.json of the whole
        tag = f"{tag}-{'-'.join(systems)}"
    only = [w.strip() for w in args.only.split(",") if w.strip()] if args.only else None
    if only:  # and so does a run of some workloads
        tag = f"{tag}-only-{'-'.join(only)}"[:80]
        only = [w for name in only for w in (NEW if name == "new" else [name])]
    if args.repetitions:
        sizes = replace(sizes, repetitions=args.repetitions)
    console = Console(width=None if os.isatty(1) else 200)
    raw = harness.execute(
        sizes,
        systems=systems,
        postgres=not args.no_postgres,
        extras=not args.no_extras,
        only=only,
        log=console.print,
    )
    medians = report.aggregate(raw)
    goals = report.targets(medians, raw)
    console.print(report.render(raw, medians, goals))
    for note in report.settings_note(raw):
        console.print(f"  {note}")
    path, png = report.write(raw, medians, goals, args.out, tag)
    console.print(f"results: {path}" + (f"\nchart: {png}" if png else ""))
    console.print(f"took {raw['seconds']:.0f}s")
    failed = [c for c in raw["cells"] if c["error"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
