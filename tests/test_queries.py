"""The named queries: their `:name` parameters, turned into psycopg's for PostgreSQL, a
statement given other parameters than its query takes refused at once in tests, and rows
read by column name."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from stepstone.store import store_from_url
from stepstone.store.postgres import Row, row_class
from stepstone.store.queries import CHECK_PARAMS_ENV, load, named, own, parameters, to_pyformat
from stepstone.store.sql_store import SqlStore
from stepstone.store.tx import Many, Tx


def test_parameters_become_psycopg_ones_and_casts_strings_and_comments_stay() -> None:
    sql = (
        "SELECT :a::text, 'it''s :b', \"col:c\", x::integer -- :d's\n"
        "/* :e */ FROM t WHERE y = :a AND z LIKE 'p%' AND w = :f_2"
    )
    assert to_pyformat(sql) == (
        "SELECT %(a)s::text, 'it''s :b', \"col:c\", x::integer -- :d's\n"
        "/* :e */ FROM t WHERE y = %(a)s AND z LIKE 'p%%' AND w = %(f_2)s"
    )
    assert parameters(sql) == {"a", "f_2"}


def test_a_percent_outside_a_string_is_doubled_and_a_literal_ends_where_it_ends() -> None:
    assert to_pyformat("SELECT 7 % :n, '\\' || :s") == "SELECT 7 %% %(n)s, '\\' || %(s)s"
    assert to_pyformat("SELECT ':x' || ':y'") == "SELECT ':x' || ':y'"
    assert to_pyformat("SELECT a FROM t -- no parameter: here") == (
        "SELECT a FROM t -- no parameter: here"
    )


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_query_names_its_parameters(dialect: str) -> None:
    for name, sql in named(dialect).items():
        code = re.sub(r"--[^\n]*|'(?:[^']|'')*'", "", sql)
        assert "?" not in code, f"{dialect} query {name} has a positional placeholder"
    if dialect == "postgres":
        for name, sql in load(dialect).items():
            code = re.sub(r"--[^\n]*|'(?:[^']|'')*'", "", sql).replace("::", "")
            assert not re.search(r":[A-Za-z_]", code), f"{name}: {code}"


def test_an_override_takes_the_parameters_of_the_query_it_overrides() -> None:
    # the scripts call a query by name whatever the dialect: it must take the same keys
    shared = {name: parameters(sql) for name, sql in named("sqlite").items()}
    its_own = own("postgres")
    assert its_own  # the PostgreSQL claim's (scripts/claim.py, claim_runs_at_once)
    for name, sql in named("postgres").items():
        if name in its_own:
            assert name not in shared, f"postgres query {name} of its own hides a shared one"
            continue
        assert name in shared, f"postgres query {name} overrides nothing"
        assert parameters(sql) == shared[name], name


async def test_psycopg_runs_a_converted_query_with_a_parameter_used_twice(
    postgres_url: str,
) -> None:
    sql = "SELECT :a::text || '%' AS x, :a = :a AS same, 'b:' LIKE 'b%' AS matched"
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(to_pyformat(sql).encode(), {"a": "v"}).fetchone()
    assert row == ("v%", True, True)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'stepstone.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = store_from_url(url)
    assert isinstance(opened, SqlStore)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_tests_refuse_a_missing_or_an_extra_parameter(store: SqlStore) -> None:
    def extra(tx: Tx) -> None:
        tx("check_fence", run_id="r", fence=1)

    def missing(tx: Tx) -> None:
        tx("end_job", run_id="r")

    with pytest.raises(TypeError, match=r"query 'check_fence' .* unexpected \['fence'\]"):
        await store._write(extra)
    with pytest.raises(TypeError, match=r"query 'end_job' .* missing \['fence'\]"):
        await store._read(missing)
    assert await store._read(lambda tx: tx("check_fence", run_id="r").fetchone()) is None


async def test_unchecked_a_missing_parameter_still_fails(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHECK_PARAMS_ENV, "0")  # as in production
    for url, error in [
        (f"sqlite:///{tmp_path / 'stepstone.db'}", sqlite3.ProgrammingError),
        (postgres_url, psycopg.ProgrammingError),
    ]:
        store = store_from_url(url)
        assert isinstance(store, SqlStore)
        await store.open()
        try:
            with pytest.raises(error):
                await store._read(lambda tx: tx("end_job", run_id="r").rowcount)
            # an extra one is not looked at
            found = await store._read(lambda tx: tx("check_fence", run_id="r", x=1).fetchone())
            assert found is None
        finally:
            await store.close()


def test_a_postgresql_row_reads_by_name_and_by_position_and_is_a_tuple() -> None:
    row = row_class(("run_id", "fence"))(("r1", 3))
    assert (row["run_id"], row["fence"], row[0], row[-1], row[:1]) == ("r1", 3, "r1", 3, ("r1",))
    run_id, fence = row
    assert (run_id, fence) == ("r1", 3) and row == ("r1", 3) and isinstance(row, Row)
    with pytest.raises(KeyError):
        row["owner"]
    assert row_class(("run_id", "fence")) is type(row)  # one class per list of names


async def test_rows_read_by_column_name_on_both_databases(store: SqlStore) -> None:
    row = await store._read(lambda tx: tx("next_due").fetchone())
    assert row["due"] is None and row[0] is None
    runs = await store._read(lambda tx: tx("get_runs", ids=Many(["none"])).fetchall())
    assert runs == []
