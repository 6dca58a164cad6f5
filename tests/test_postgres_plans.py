"""The plans PostgreSQL chooses for the engine's statements, on a database of some size.

A workload (runs of many steps, sleeps, waits and the events that resume them, sends of
one event and of many) runs against a database already holding thousands of runs, steps
and events, with the server's auto_explain writing every statement's plan to its log.
No plan may read a whole table that grows with the deployment: the runs, steps, events,
history and jobs are each found by an index, whatever the batch's size. A statement that
joined a batch's JSON rows to a table used to scan it (the planner counts 100 rows for
json_array_elements; see src/stepstone/store/sql/postgres/queries.sql).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import psycopg
import pytest

import stepstone
from stepstone.store import queries

from .pg_cluster import PostgresCluster

pytestmark = pytest.mark.slow

GROWING = ("runs", "steps", "events", "history", "run_events", "jobs", "waits")
FINISHED_RUNS = 3000  # 30,000 steps: where scanning `steps` looked cheaper than 100 probes
SLEEPING_RUNS = 10000  # asleep for a day: their jobs, open steps and waits stay


def _fill(url: str) -> None:
    """Finished runs with ten steps each, and runs asleep and waiting for a day, written
    as the engine writes them; then the statistics the planner reads."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (id, name, data, ts, received_at)"
            " SELECT 'e' || lpad(g::text, 8, '0'), 'old/event', '{}', 0, g"
            " FROM generate_series(1, %(n)s) AS g",
            {"n": FINISHED_RUNS + SLEEPING_RUNS},
        )
        conn.execute(
            "INSERT INTO runs (id, function_id, status, event_ids, created_at, started_at,"
            " ended_at) SELECT 'r' || lpad(g::text, 8, '0'), 'old',"
            " CASE WHEN g <= %(done)s THEN 'completed' ELSE 'running' END,"
            " '[\"e' || lpad(g::text, 8, '0') || '\"]', g, g,"
            " CASE WHEN g <= %(done)s THEN g + 1 END FROM generate_series(1, %(n)s) AS g",
            {"done": FINISHED_RUNS, "n": FINISHED_RUNS + SLEEPING_RUNS},
        )
        conn.execute("INSERT INTO run_events SELECT 'e' || substr(id, 2), id FROM runs")
        conn.execute(
            "INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, output,"
            " started_at, ended_at) SELECT r.id, 'h' || s, 's' || s, 'run', 'completed', 1,"
            " '1', 1, 2 FROM runs r, generate_series(1, 10) AS s WHERE r.status = 'completed'"
        )
        conn.execute(
            "INSERT INTO steps (run_id, hashed_id, id, kind, status, attempts, started_at,"
            " wake_at) SELECT id, 'nap', 'nap', 'sleep', 'sleeping', 0, 1, 1e12"
            " FROM runs WHERE status = 'running'"
        )
        conn.execute(
            "INSERT INTO jobs (run_id, function_id, available_at, fence)"
            " SELECT id, 'old', 1e12, 1 FROM runs WHERE status = 'running'"
        )
        conn.execute(
            "INSERT INTO waits (run_id, hashed_id, event, trigger_event, expires_at,"
            " match_path, match_key) SELECT id, 'w', 'old/reply', '{}', 1e12, 'data.k', id"
            " FROM runs WHERE status = 'running'"
        )
        conn.execute("INSERT INTO wait_paths (event, match_path) VALUES ('old/reply', 'data.k')")
        conn.execute(
            "INSERT INTO history (run_id, at, kind) SELECT id, created_at, k"
            " FROM runs, unnest(ARRAY['queued', 'started', 'completed']) AS k"
        )
        # statistics for all but `steps`: a table autovacuum has not analyzed yet (it
        # waits for a minute and a fifth of the table changed) is planned from its size
        conn.execute("ANALYZE events, runs, run_events, jobs, waits, history")


def _explain_everything(cluster: PostgresCluster, url: str) -> None:
    """Has every new session of `url`'s database log each statement's plan."""
    name = url.split("@/", 1)[1].split("?", 1)[0]
    with cluster.admin() as conn:
        conn.execute("LOAD 'auto_explain'")
        for setting, value in (
            ("session_preload_libraries", "auto_explain"),
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
        ):
            conn.execute(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'".encode())


def _workload_app(url: str) -> stepstone.App:
    app = stepstone.App("plans", database=url)

    async def one(i: int) -> int:
        return i

    @app.function(id="steps", trigger="plans/steps")
    async def steps(ctx: stepstone.Context) -> int:
        for i in range(5):
            await ctx.step.run(f"s{i}", one, i)
        return 5

    @app.function(id="napper", trigger="plans/nap")
    async def napper(ctx: stepstone.Context) -> int:
        await ctx.step.sleep("nap", 0.05)
        return int(await ctx.step.run("after", one, 1))

    @app.function(id="waiter", trigger="plans/wait")
    async def waiter(ctx: stepstone.Context) -> bool:
        got = await ctx.step.wait_for_event(
            "reply", event="plans/reply", timeout="1h", if_="event.data.k == async.data.k"
        )
        return got is not None

    return app


async def _run_workload(url: str) -> None:
    app = _workload_app(url)
    try:
        async with app.worker(concurrency=50):
            await app.send([{"name": "plans/wait", "data": {"k": k}} for k in range(20)])
            await app.send([{"name": "plans/steps", "data": {}} for _ in range(60)])
            await app.send([{"name": "plans/nap", "data": {}} for _ in range(20)])
            for _ in range(200):  # every waiter parked before its reply is sent
                if _count(url, "SELECT count(*) FROM waits WHERE event = 'plans/reply'") == 20:
                    break
                await asyncio.sleep(0.05)
            for k in range(10):  # one event a send, and a send of several names
                await app.send({"name": "plans/reply", "data": {"k": k}})
            await app.send(
                [{"name": "plans/reply", "data": {"k": k}} for k in range(10, 20)]
                + [{"name": "plans/nobody", "data": {}}]
            )
            unfinished = "SELECT count(*) FROM runs WHERE function_id <> 'old' AND ended_at IS NULL"
            for _ in range(400):
                if not _count(url, unfinished):
                    break
                await asyncio.sleep(0.05)
            assert not _count(url, unfinished), "runs of the workload did not finish"
            done = "SELECT count(*) FROM runs WHERE function_id <> 'old' AND status = 'completed'"
            assert _count(url, done) == 100
    finally:
        await app.close()


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        conn.execute("SET auto_explain.log_min_duration = -1")  # the test's own: not logged
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row else 0


def _plans(log: Path, start: int) -> list[str]:
    with log.open(errors="replace") as f:
        f.seek(start)
        text = f.read()
    return [p for p in text.split("LOG:  duration:")[1:] if "Query Text:" in p]


def test_no_statement_of_the_engine_scans_a_growing_table(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    _fill(postgres_url)
    _explain_everything(postgres_cluster, postgres_url)
    start = postgres_cluster.log.stat().st_size
    asyncio.run(_run_workload(postgres_url))
    plans = _plans(postgres_cluster.log, start)
    texts = " ".join(plans)
    # the workload's statements were all seen (the log holds their plans)
    for statement in ("INSERT INTO steps", "DELETE FROM jobs", "UPDATE runs", "FROM waits"):
        assert statement in texts, f"no plan logged for {statement!r}"
    scans = []
    for plan in plans:
        tables = set(re.findall(r"Seq Scan on (\w+)", plan)) & set(GROWING)
        if tables:
            query = plan.split("Query Text:", 1)[1].strip().splitlines()[0]
            scans.append(f"{sorted(tables)} scanned by: {query[:160]}")
    assert not scans, "plans that read a whole table:\n" + "\n".join(sorted(set(scans)))


def _plans_made(conn: psycopg.Connection[tuple[object, ...]], part: str) -> tuple[int, int]:
    """(generic, custom) plans made for the statement this session prepared with `part`."""
    row = conn.execute(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE strpos(statement, %s) > 0",
        (part,),
    ).fetchone()
    assert row is not None, "the statement was not prepared"
    return int(str(row[0])), int(str(row[1]))


def test_a_send_s_lookup_of_waits_is_planned_once_where_waits_exist(postgres_url: str) -> None:
    """The lookup of one name's waits keeps one plan; the lookup of a list of names is
    planned again at every call once a name has waits (why a send of one name asks the
    former: see waits_of_name in src/stepstone/store/sql/queries.sql)."""
    _fill(postgres_url)
    statements = queries.load("postgres")
    one, many = statements["waits_of_name"], statements["waits_of_names"]
    with psycopg.connect(postgres_url, autocommit=True, prepare_threshold=0) as conn:
        for _ in range(20):
            assert not conn.execute(one, {"name": "plans/nobody"}).fetchall()
            assert not conn.execute(many, {"names": ["plans/nobody"]}).fetchall()
        # the waits the fill left are found by both
        keyed = conn.execute(one, {"name": "old/reply"}).fetchall()
        assert [row[7] for row in keyed] == ["data.k"]
        assert conn.execute(many, {"names": ["old/reply"]}).fetchall() == keyed
        generic, custom = _plans_made(conn, "WHERE event = $1 AND")
        assert generic >= 15 and custom <= 5, (generic, custom)
        assert _plans_made(conn, "unnest($1::text[])") == (0, 21)
