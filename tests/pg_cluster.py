"""A throwaway PostgreSQL cluster for the tests: initdb in a temp dir, a unix socket, no TCP.

Run as root, the server's commands run as the `postgres` OS user (initdb refuses root).
Each test gets its own database, copied from a migrated template, which takes a few ms.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

# Settings for speed: the cluster lives for one test session. fsync=off loses nothing on a
# clean restart or a killed server, only on an OS crash, which would end the session anyway.
SERVER_OPTIONS = {
    "listen_addresses": "''",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}


class PostgresError(RuntimeError):
    pass


def find_bin(name: str) -> str:
    """The server binary `name` (initdb, pg_ctl) from PATH or Debian's versioned folders."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if versions:
        return versions[0]
    raise PostgresError(
        f"PostgreSQL's {name} was not found on PATH or in /usr/lib/postgresql/*/bin: "
        "install the server (make system-deps, or apt-get install postgresql)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="stepstone-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)

    # -- running the server --------------------------------------------------------------
    def _cmd(self, *args: str, timeout: float = 60) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise PostgresError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"\nserver log:\n{log}"
            )

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._cmd(
            find_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        options = " ".join(f"-c {k}={v}" for k, v in SERVER_OPTIONS.items())
        self._cmd(
            find_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port} -k {self.root} {options}",
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._cmd(find_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------
    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@/{database}?host={self.root}&port={self.port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_database(self, template: str | None = None) -> str:
        name = f"t{next(self._names)}"
        with self.admin() as conn:
            if template is None:
                conn.execute(f'CREATE DATABASE "{name}"'.encode())
            else:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'.encode())
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def start_cluster() -> PostgresCluster:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
