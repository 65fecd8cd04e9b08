-- one_window.sql - the lean check of one key on one fixed_window rate,
-- cost >= 1, as one plain statement (no call of the check function),
-- prepared once per connection by wire.py; the decision is check.sql's,
-- field by field (lean.py, OneWindow.row).
--
-- Invariant: one_gcra.sql's. The key's advisory lock is taken first (the
-- check function's lock class), then the clock; a new key's row is
-- inserted under the lock; an existing row is updated by the upsert only
-- when the check admits, so a denial writes no row version, and reports
-- the state it was denied on, read by @window@ (a fresh snapshot, of the
-- row the upsert locked). A window's end is a multiple of W; the window in
-- force is the stored one while it has not ended, else now's. A stored end
-- further ahead than W + max(W, 1 s) (a clock excursion) is never admitted
-- here: the denial shows it, and the caller has the check function decide
-- (it clamps and writes the repair, as every store does). expires is the
-- window's end rounded up to @grain@ ns, as check.sql writes it. The
-- sweep: one_sweep.sql, as in one_gcra.sql.
--
-- Placeholders: as in one_gcra.sql, and @window@ (the window state
-- function). Parameters, sent by wire.py: $1 (the row key, bytea), $2
-- (the cost), $3 (B, the window's capacity), $4 (W, ns), and $5 (now, ns)
-- on a test clock.
-- Result: allowed; what is left of the window in force (ns; the stored
-- end's lead when it is ahead), and its count (clamped to [0, B]): after
-- the check when admitted, as denied on otherwise.

@key_now@, up AS (
    INSERT INTO @table@ AS x (k, a, c, expires)
    SELECT $1::bytea, n.now + ($4::int8 - mod(n.now, $4::int8)), $2::int8,
           least(div(n.now + ($4::int8 - mod(n.now, $4::int8)) + (@grain@ - 1), @grain@)
                 * @grain@, 9223372036854775807)
      FROM n
    ON CONFLICT (k) DO UPDATE
       SET a = CASE WHEN x.a > (SELECT n.now FROM n) THEN x.a ELSE EXCLUDED.a END,
           c = CASE WHEN x.a > (SELECT n.now FROM n) THEN least(greatest(x.c, 0), $3::int8)
                    ELSE 0 END + $2::int8,
           expires = CASE WHEN x.a > (SELECT n.now FROM n)
                          THEN least(div(x.a + (@grain@ - 1), @grain@) * @grain@,
                                     9223372036854775807)
                          ELSE EXCLUDED.expires END
     WHERE x.a - $4::int8 - (SELECT n.now FROM n) <= greatest($4::int8, 1000000000)
       AND CASE WHEN x.a > (SELECT n.now FROM n) THEN least(greatest(x.c, 0), $3::int8)
                ELSE 0 END + $2::int8 <= $3::int8
    RETURNING x.a, x.c
)@sweep@
SELECT u.a IS NOT NULL,
       least(greatest(CASE WHEN u.a IS NOT NULL THEN u.a - n.now
                           WHEN s.st[1] > n.now THEN s.st[1] - n.now
                           ELSE $4::int8 - mod(n.now, $4::int8) END, 0),
             9223372036854775807)::int8,
       CASE WHEN u.a IS NOT NULL THEN u.c
            WHEN s.st[1] > n.now THEN least(greatest(s.st[3], 0), $3::int8)::int8
            ELSE 0 END
  FROM n LEFT JOIN up AS u ON true
  LEFT JOIN LATERAL (SELECT CASE WHEN u.a IS NULL THEN @window@($1::bytea) END AS st) AS s
    ON true
