-- many_gcra.sql - the lean check of one key on several rates of the GCRA
-- family (gcra, token_bucket, leaky_bucket policing and shaping), cost >=
-- 1 on each, all-or-nothing, as one plain statement, prepared once per
-- connection by wire.py; the decision is check.sql's, field by field
-- (lean.py, ManyGcra.row: the deciding part, when denied the longest wait,
-- else the fewest left, the first of equals).
--
-- Invariant: check.sql's. The keys' advisory locks are taken first, in
-- check.sql's canonical order (sorted lock ids, same lock class), so a
-- group, a one-key check and this never wait on each other in a cycle;
-- then the clock; then each row is read and locked by @state@ (a fresh
-- snapshot: rows committed while the locks were awaited are seen; FOR
-- UPDATE: a writer without the advisory lock waits). Rows are written
-- only when every part is admitted; a denial writes nothing.
-- Every row key is distinct (the caller's guarantee: one key per rate).
--
-- Placeholders: @table@, @state@, @lockclass@, @lock@, @now@, @sweep@,
-- @sweep_rows@, @grain@ (as in one_gcra.sql). Parameters, as text: $1 (the
-- row keys, a bytea[] literal), $2, $3 (int8[] literals, one item per
-- part: cost * T, tau), and $4 (now, ns) on a test clock.
-- Result: one row per part, in order: how far its TAT led the clock when
-- the check read it (ns, >= 0, int8-clamped). Every part admits when
-- lead + cost * T <= tau; the rows were written if every part admits.

WITH n AS MATERIALIZED (
    SELECT CASE
        WHEN @lock@ IS NULL THEN NULL
        WHEN (SELECT count(pg_advisory_xact_lock(@lockclass@, h.id))
                FROM (SELECT DISTINCT hashtext(encode(q.k, 'hex')) AS id
                        FROM unnest($1::bytea[]) AS q(k) ORDER BY 1) AS h) < 0
            THEN NULL
        ELSE @now@
    END AS now
), s AS MATERIALIZED (
    SELECT q.i, q.k, q.nt, q.tau, n.now,
           greatest(coalesce(@state@(q.k, true), 0), n.now) AS base
      FROM n, unnest($1::bytea[], $2::int8[], $3::int8[]) WITH ORDINALITY AS q(k, nt, tau, i)
), up AS (
    INSERT INTO @table@ AS x (k, a, expires)
    SELECT s.k, s.base + s.nt,
           least(div(s.base + s.nt + (@grain@ - 1), @grain@) * @grain@, 9223372036854775807)
      FROM s
     WHERE NOT EXISTS (SELECT FROM s AS e WHERE e.base + e.nt - e.now > e.tau)
    ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a, expires = EXCLUDED.expires
    RETURNING 1
)@sweep@
SELECT least(s.base - s.now, 9223372036854775807)::int8 FROM s ORDER BY s.i
