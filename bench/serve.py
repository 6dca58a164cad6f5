"""The intake workload's server: the dev HTTP server on uvicorn, in its own process.

python -m bench.serve URL PORT
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import uvicorn

    from stepstone.server import create_app

    from .stepstone_runner import intake_app

    url, port = argv[0], int(argv[1])
    app = intake_app(url)
    asgi = create_app(app, dev=True, event_keys=[])
    uvicorn.run(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(sys.argv[1:])
