"""The other process of the cross-process latency workloads: sends events on a schedule.

python -m bench.sender stepstone|dbos URL SAMPLES GAP
"""

from __future__ import annotations

import asyncio
import sys


def main(argv: list[str]) -> None:
    system, url, samples, gap = argv[0], argv[1], int(argv[2]), float(argv[3])
    if system == "stepstone":
        from .stepstone_runner import send_latency_events

        asyncio.run(send_latency_events(url, samples, gap))
    elif system == "dbos":
        from .dbos_runner import send_latency_events as send_dbos

        send_dbos(url, samples, gap)
    else:
        raise SystemExit(f"unknown system {system!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
