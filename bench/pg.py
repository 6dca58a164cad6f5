"""A throwaway PostgreSQL cluster for one benchmark run: initdb in a temp dir, a free port,
stopped and deleted at the end. Default durability: fsync=on, synchronous_commit=on."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

from .common import free_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Cluster:
    def __init__(self, datadir: str, port: int, as_user: str | None) -> None:
        self.datadir = datadir
        self.port = port
        self.as_user = as_user
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.version = ""

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _preload(initdb: str) -> str:
    """pg_stat_statements where the server has it (counted work per statement, in
    bench/dbwork.py); nothing otherwise."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(initdb))), "lib")
    if os.path.exists(os.path.join(libdir, "pg_stat_statements.so")):
        return " -c shared_preload_libraries=pg_stat_statements"
    return ""


def _run(cmd: list[str], as_user: str | None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    if as_user:
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


@contextlib.contextmanager
def cluster() -> Iterator[Cluster | None]:
    """Yields a running cluster, or None (with a reason printed) when PostgreSQL is missing."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        print("PostgreSQL rows skipped: initdb/pg_ctl not found (make system-deps installs them)")
        yield None
        return
    as_user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
            as_user = "postgres"
        except KeyError:
            print("PostgreSQL rows skipped: running as root and there is no postgres user")
            yield None
            return
    root = tempfile.mkdtemp(prefix="stepstone-bench-pg-")
    if as_user:
        shutil.chown(root, as_user)
    datadir = os.path.join(root, "data")
    port = free_port()
    started = False
    try:
        _run(
            [initdb, "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"],
            as_user,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        options += _preload(initdb)
        _run(
            [pg_ctl, "-D", datadir, "-o", options, "-w", "-l", os.path.join(root, "log"), "start"],
            as_user,
        )
        started = True
        handle = Cluster(datadir, port, as_user)
        import psycopg

        for _ in range(50):
            try:
                with psycopg.connect(handle.admin_url) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    handle.version = str(row[0]) if row else ""
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        yield handle
    finally:
        if started:
            with contextlib.suppress(subprocess.CalledProcessError):
                _run([pg_ctl, "-D", datadir, "-m", "fast", "-w", "stop"], as_user)
        shutil.rmtree(root, ignore_errors=True)
