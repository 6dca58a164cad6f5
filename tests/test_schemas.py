"""The SQLite and PostgreSQL schemas, after every migration, have the same tables, columns
and indexes: the one set of transaction scripts runs on both."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

import stepstone
from tests.pg_cluster import PostgresCluster

Schema = dict[str, tuple[frozenset[str], frozenset[str]]]  # table -> (columns, indexes)


async def _sqlite_schema(path: Path) -> Schema:
    app = stepstone.App("schema", database=f"sqlite:///{path}")
    await app.store()  # creates and migrates the file
    await app.close()
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        schema: Schema = {}
        for table in tables:
            columns = frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            indexes = frozenset(
                row[1]
                for row in conn.execute(f"PRAGMA index_list({table})")
                if not row[1].startswith("sqlite_autoindex")  # primary keys and UNIQUE
            )
            schema[table] = (columns, indexes)
        return schema
    finally:
        conn.close()


def _postgres_schema(url: str) -> Schema:
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        schema: Schema = {}
        for table in tables:
            columns = frozenset(
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s",
                    (table,),
                )
            )
            indexes = frozenset(
                row[0]
                for row in conn.execute(
                    "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = %s "
                    "AND NOT x.indisprimary AND NOT x.indisunique",
                    (table,),
                )
            )
            schema[table] = (columns, indexes)
        return schema


async def test_both_databases_have_the_same_schema(
    tmp_path: Path, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    on_sqlite = await _sqlite_schema(tmp_path / "schema.db")
    # a fresh store migrates a new database the way every process does
    app = stepstone.App("schema", database=postgres_url)
    await app.store()
    await app.close()
    on_postgres = _postgres_schema(postgres_url)
    assert sorted(on_sqlite) == sorted(on_postgres)
    for table in on_sqlite:
        assert on_sqlite[table][0] == on_postgres[table][0], f"columns of {table}"
        assert on_sqlite[table][1] == on_postgres[table][1], f"indexes of {table}"
    assert "kind" in on_sqlite["waits"][0]  # the newest migration is in both
