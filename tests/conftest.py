"""Fixtures: a store URL per backend, so behaviour tests run against every store.

PostgreSQL runs in a throwaway cluster started once per session (tests/pg_cluster.py);
each test gets a fresh database copied from a migrated template. If the cluster cannot
start, the PostgreSQL tests fail with the reason: they are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stepstone.store.postgres_migrate import migrate
from stepstone.store.queries import CHECK_PARAMS_ENV
from tests.pg_cluster import PostgresCluster, start_cluster

# every statement of the tests (and of the processes they start) is checked to be given
# exactly the parameters its query takes
os.environ.setdefault(CHECK_PARAMS_ENV, "1")

BACKENDS = ["memory", "sqlite", "postgres"]
TEMPLATE = "stepstone_template"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = start_cluster()
    except Exception as exc:
        pytest.fail(f"could not start a PostgreSQL cluster for the tests: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: PostgresCluster) -> str:
    """A database with the schema applied, to copy for each test."""
    with postgres_cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"'.encode())
    with psycopg.connect(postgres_cluster.url(TEMPLATE), autocommit=True) as conn:
        migrate(conn)
    return TEMPLATE


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster, postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = postgres_cluster.create_database(template=postgres_template)
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stepstone.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgres"])
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that several processes share: a SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'stepstone.db'}"


@pytest.fixture(autouse=True)
def _no_env_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPSTONE_DATABASE_URL", raising=False)
