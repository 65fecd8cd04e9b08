-- many_gcra.sql - the lean check of one key on several rates of the GCRA
-- family (gcra, token_bucket, leaky_bucket policing and shaping), cost >=
-- 1 on each, all-or-nothing, as one plain statement; the decision is
-- check.sql's, field by field (the deciding part: when denied the longest
-- wait, else the fewest left, the first of equals).
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
-- @sweep_rows@, @grain@ (as in one_gcra.sql). Parameters: %(keys)s (the
-- row keys, a bytea[] literal), %(nt)s, %(tau)s, %(t)s (int8[] literals,
-- one item per part: cost * T, tau, T), %(shaping)s (bool), and %(now)s on
-- a test clock.
-- Result: allowed, part (0-based), remaining, retry_after, reset_after, delay.

WITH p AS MATERIALIZED (
    SELECT q.k, q.nt, q.tau, q.t, q.i
      FROM unnest(%(keys)s::bytea[], %(nt)s::int8[], %(tau)s::int8[], %(t)s::int8[])
           WITH ORDINALITY AS q(k, nt, tau, t, i)
), n AS MATERIALIZED (
    SELECT CASE
        WHEN @lock@ IS NULL THEN NULL
        WHEN (SELECT count(pg_advisory_xact_lock(@lockclass@, h.id))
                FROM (SELECT DISTINCT hashtext(encode(p.k, 'hex')) AS id
                        FROM p ORDER BY 1) AS h) < 0
            THEN NULL
        ELSE @now@
    END AS now
), s AS MATERIALIZED (
    SELECT p.k, p.nt, p.tau, p.t, p.i, n.now,
           greatest(coalesce(@state@(p.k, true), 0), n.now) AS base
      FROM n, p
), d AS MATERIALIZED (
    SELECT s.k, s.i, s.t, s.base + s.nt AS a,
           s.base + s.nt - s.now <= s.tau AS ok,
           CASE WHEN s.base + s.nt - s.now <= s.tau THEN div(s.tau - (s.base + s.nt - s.now), s.t)
                WHEN s.base - s.now < s.tau THEN div(s.tau - (s.base - s.now), s.t)
                ELSE 0 END AS rem,
           CASE WHEN s.base + s.nt - s.now <= s.tau THEN 0
                ELSE s.base + s.nt - s.now - s.tau END AS retry,
           CASE WHEN s.base + s.nt - s.now <= s.tau THEN s.base + s.nt - s.now
                ELSE s.base - s.now END AS reset,
           CASE WHEN s.base + s.nt - s.now <= s.tau AND %(shaping)s::bool THEN s.base - s.now
                ELSE 0 END AS delay
      FROM s
), up AS (
    INSERT INTO @table@ AS x (k, a, expires)
    SELECT d.k, d.a,
           least(div(d.a + (@grain@ - 1), @grain@) * @grain@, 9223372036854775807)
      FROM d
     WHERE (SELECT bool_and(e.ok) FROM d AS e)
    ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a, expires = EXCLUDED.expires
    RETURNING 1
)@sweep@
SELECT d.ok, (d.i - 1)::int4,
       least(greatest(d.rem, 0), 9223372036854775807)::int8,
       least(greatest(d.retry, 0), 9223372036854775807)::int8,
       least(greatest(d.reset, 0), 9223372036854775807)::int8,
       least(greatest(d.delay, 0), 9223372036854775807)::int8
  FROM d
 ORDER BY d.ok, CASE WHEN d.ok THEN d.rem ELSE -d.retry END, d.i
 LIMIT 1
