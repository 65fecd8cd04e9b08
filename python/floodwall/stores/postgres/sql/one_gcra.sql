-- one_gcra.sql - the lean check: one key, one rate of the GCRA family
-- (gcra, token_bucket, leaky_bucket policing and shaping), cost >= 1, as
-- one plain statement (no function call, no arrays, no loop), prepared
-- once per connection; the decision is check.sql's, field by field.
--
-- Invariant: the same as check.sql's. The key's advisory lock (the one
-- check.sql takes, in the same lock class) is taken first, so a row is
-- still inserted only under it, and a check of one key waits on one thing
-- in turn; the clock is read once it is held. The upsert admits in its
-- DO UPDATE ... WHERE: a denial writes no row version (its conflict locks
-- the row, so the state it reports is the one it denied on, read by
-- @state@, whose fresh snapshot sees it). A new key is always admitted
-- (cost <= burst, so cost * T <= tau). expires is rounded up to a multiple
-- of @grain@ ns, as check.sql writes it.
-- The sweep (one_sweep.sql, only in the statement the caller picks for
-- one check in SWEEP_EVERY, on the database's clock, and only when it
-- admits) removes at most @sweep_rows@ expired rows, never this key's and
-- never one another transaction holds.
--
-- Placeholders, filled once per table and lock timeout (so every limiter
-- of a store shares the statement, prepared once per connection):
-- @table@, @state@ (quoted names), @lockclass@ (int4), @lock@ (a
-- set_config of lock_timeout, or a no-op), @now@ (the clock:
-- clock_timestamp() in ns, or the %(now)s parameter), @sweep@ (the sweep's
-- CTE, or nothing), @sweep_rows@, @grain@. Parameters (int8 unless said):
-- %(k)s (the row key, bytea), %(nt)s (cost * T, ns; <= tau), %(tau)s,
-- %(t)s (ns), %(shaping)s (bool: report the shaping delay), and %(now)s
-- on a test clock.
-- Result: allowed, part (0), remaining, retry_after, reset_after, delay.

WITH n AS MATERIALIZED (
    SELECT CASE
        WHEN @lock@ IS NULL THEN NULL
        WHEN pg_advisory_xact_lock(@lockclass@, hashtext(encode(%(k)s, 'hex')))::text IS NULL
            THEN NULL
        ELSE @now@
    END AS now
), up AS (
    INSERT INTO @table@ AS x (k, a, expires)
    SELECT %(k)s, n.now + %(nt)s::int8,
           least(div(n.now + (%(nt)s::int8 + (@grain@ - 1)), @grain@) * @grain@,
                 9223372036854775807)
      FROM n
    ON CONFLICT (k) DO UPDATE
       SET a = greatest(x.a, EXCLUDED.a - %(nt)s::int8) + %(nt)s::int8,
           expires = least(div(greatest(x.a, EXCLUDED.a - %(nt)s::int8)
                               + (%(nt)s::int8 + (@grain@ - 1)), @grain@) * @grain@,
                           9223372036854775807)
     WHERE greatest(x.a, EXCLUDED.a - %(nt)s::int8) - (EXCLUDED.a - %(nt)s::int8)
           + %(nt)s::int8 <= %(tau)s::int8
    RETURNING x.a
), d AS MATERIALIZED (
    SELECT (SELECT u.a FROM up AS u) AS a,
           CASE WHEN NOT EXISTS (SELECT FROM up) THEN coalesce(@state@(%(k)s, false), 0) END AS tat
)@sweep@
SELECT d.a IS NOT NULL,
       0,
       least(greatest(CASE
           WHEN d.a IS NOT NULL THEN div(%(tau)s::int8 - (d.a - n.now), %(t)s::int8)
           WHEN greatest(d.tat, n.now) - n.now < %(tau)s::int8
               THEN div(%(tau)s::int8 - (greatest(d.tat, n.now) - n.now), %(t)s::int8)
           ELSE 0 END, 0), 9223372036854775807)::int8,
       least(greatest(CASE
           WHEN d.a IS NOT NULL THEN 0
           ELSE greatest(d.tat, n.now) - n.now + %(nt)s::int8 - %(tau)s::int8 END, 0),
           9223372036854775807)::int8,
       least(greatest(CASE
           WHEN d.a IS NOT NULL THEN d.a - n.now
           ELSE greatest(d.tat, n.now) - n.now END, 0), 9223372036854775807)::int8,
       least(greatest(CASE
           WHEN d.a IS NOT NULL AND %(shaping)s::bool THEN d.a - %(nt)s::int8 - n.now
           ELSE 0 END, 0), 9223372036854775807)::int8
  FROM n, d
