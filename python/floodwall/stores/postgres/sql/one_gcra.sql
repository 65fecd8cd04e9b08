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
-- @key_now@ (one_lock.sql, filled first), @table@, @state@ (quoted
-- names), @lockclass@ (int4), @lock@ (a set_config of lock_timeout, or a
-- no-op), @now@ (the clock: clock_timestamp() in ns, or the $4
-- parameter), @sweep@ (the sweep's CTE, or nothing), @sweep_rows@,
-- @grain@. Parameters, sent by wire.py: $1 (the row key, bytea), $2
-- (cost * T, ns; <= tau), $3 (tau, ns), and
-- $4 (now, ns) on a test clock.
-- Result: allowed, and how far the key's TAT leads now (ns, >= 0,
-- int8-clamped): the admitted TAT's lead, or the state's a denial was
-- decided on. Every field of the decision follows from these two and the
-- rate (lean.py, OneGcra.row: check.sql's formulas, in Python).

@key_now@, up AS (
    INSERT INTO @table@ AS x (k, a, expires)
    SELECT $1::bytea, n.now + $2::int8,
           least(div(n.now + ($2::int8 + (@grain@ - 1)), @grain@) * @grain@,
                 9223372036854775807)
      FROM n
    ON CONFLICT (k) DO UPDATE
       SET a = greatest(x.a, EXCLUDED.a - $2::int8) + $2::int8,
           expires = least(div(greatest(x.a, EXCLUDED.a - $2::int8)
                               + ($2::int8 + (@grain@ - 1)), @grain@) * @grain@,
                           9223372036854775807)
     WHERE greatest(x.a, EXCLUDED.a - $2::int8) - (EXCLUDED.a - $2::int8)
           + $2::int8 <= $3::int8
    RETURNING x.a
)@sweep@
SELECT u.a IS NOT NULL,
       least(greatest(coalesce(u.a, @state@($1::bytea, false), 0) - n.now, 0),
             9223372036854775807)::int8
  FROM n LEFT JOIN up AS u ON true
