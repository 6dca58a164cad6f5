-- PostgreSQL overrides of ../queries.sql: row locks where several workers race.

-- name: claim
UPDATE jobs SET owner = ?, fence = fence + 1, available_at = ?, wake = 0
WHERE run_id IN (
    SELECT run_id FROM jobs WHERE available_at <= ? ORDER BY available_at LIMIT ?
    FOR UPDATE SKIP LOCKED
)
RETURNING run_id, fence, cancel;

-- name: check_fence
SELECT fence FROM jobs WHERE run_id = ? FOR SHARE;
