"""The intake workload's server: the dev HTTP server, as `stepstone dev` serves it, in its
own process.

python -m bench.serve URL PORT
"""

from __future__ import annotations

import asyncio
import sys


def main(argv: list[str]) -> None:
    from stepstone.server import bind, make_server

    from .intake import intake_app

    url, port = argv[0], int(argv[1])
    # stepstone's own listening socket and protocol: uvicorn binding its own socket would
    # measure another server (one that, for instance, always had TCP_NODELAY)
    server = make_server(intake_app(url), dev=True)
    asyncio.run(server.serve(sockets=[bind("127.0.0.1", port)]))


if __name__ == "__main__":
    main(sys.argv[1:])
