-- one_sliding.sql - the lean check of one key on one sliding_window rate,
-- cost >= 1, as one plain statement (no call of the check function),
-- prepared once per connection by wire.py; the decision is check.sql's,
-- field by field (lean.py, OneSliding.row).
--
-- Invariant: one_window.sql's. The state: a = the end of the current
-- window (a multiple of W), p and c = the previous and current windows'
-- counts. At now, the stored window is current while it has not ended
-- (counts p, c), previous during the next W (counts c, 0), else gone (0,
-- 0, now's window). The previous count weighs what is left of the
-- current window: admitted when p * min(left, W) + (c + cost) * W <=
-- B * W. A stored end further ahead than W + max(W, 1 s) is never
-- admitted here (the caller has the check function decide).
--
-- Placeholders: as in one_window.sql. Parameters: $1 (the row key,
-- bytea), $2 (the cost), $3 (B), $4 (W, ns), and $5 (now, ns) on a test
-- clock.
-- Result: allowed; what is left of the current window (ns; the stored
-- end's lead when it is ahead), the previous window's count and the
-- current one's (clamped to [0, B]): after the check when admitted, as
-- denied on otherwise.

@key_now@, up AS (
    INSERT INTO @table@ AS x (k, a, p, c, expires)
    SELECT $1::bytea, n.now + ($4::int8 - mod(n.now, $4::int8)), 0, $2::int8,
           least(div(n.now + ($4::int8 - mod(n.now, $4::int8)) + $4::int8 + (@grain@ - 1),
                     @grain@) * @grain@, 9223372036854775807)
      FROM n
    ON CONFLICT (k) DO UPDATE
       SET a = CASE WHEN x.a > (SELECT n.now FROM n) THEN x.a
                    WHEN x.a + $4::int8 > (SELECT n.now FROM n) THEN x.a + $4::int8
                    ELSE EXCLUDED.a END,
           p = CASE WHEN x.a > (SELECT n.now FROM n) THEN least(greatest(x.p, 0), $3::int8)
                    WHEN x.a + $4::int8 > (SELECT n.now FROM n)
                        THEN least(greatest(x.c, 0), $3::int8)
                    ELSE 0 END,
           c = CASE WHEN x.a > (SELECT n.now FROM n) THEN least(greatest(x.c, 0), $3::int8)
                    ELSE 0 END + $2::int8,
           expires = CASE WHEN x.a > (SELECT n.now FROM n)
                              THEN least(div(x.a + $4::int8 + (@grain@ - 1), @grain@) * @grain@,
                                         9223372036854775807)
                          WHEN x.a + $4::int8 > (SELECT n.now FROM n)
                              THEN least(div(x.a + 2 * $4::int8 + (@grain@ - 1), @grain@)
                                         * @grain@, 9223372036854775807)
                          ELSE EXCLUDED.expires END
     WHERE x.a - $4::int8 - (SELECT n.now FROM n) <= greatest($4::int8, 1000000000)
       AND CASE WHEN x.a > (SELECT n.now FROM n)
                    THEN least(greatest(x.p, 0), $3::int8)
                         * least(x.a - (SELECT n.now FROM n), $4::int8)
                         + (least(greatest(x.c, 0), $3::int8) + $2::int8) * $4::int8
                WHEN x.a + $4::int8 > (SELECT n.now FROM n)
                    THEN least(greatest(x.c, 0), $3::int8)
                         * least(x.a + $4::int8 - (SELECT n.now FROM n), $4::int8)
                         + $2::int8 * $4::int8
                ELSE $2::int8 * $4::int8 END <= $3::int8 * $4::int8::numeric
    RETURNING x.a, x.p, x.c
)@sweep@
SELECT u.a IS NOT NULL,
       least(greatest(CASE WHEN u.a IS NOT NULL THEN u.a - n.now
                           WHEN s.st[1] > n.now THEN s.st[1] - n.now
                           WHEN s.st[1] + $4::int8 > n.now THEN s.st[1] + $4::int8 - n.now
                           ELSE $4::int8 - mod(n.now, $4::int8) END, 0),
             9223372036854775807)::int8,
       CASE WHEN u.a IS NOT NULL THEN u.p
            WHEN s.st[1] > n.now THEN least(greatest(s.st[2], 0), $3::int8)::int8
            WHEN s.st[1] + $4::int8 > n.now THEN least(greatest(s.st[3], 0), $3::int8)::int8
            ELSE 0 END,
       CASE WHEN u.a IS NOT NULL THEN u.c
            WHEN s.st[1] > n.now THEN least(greatest(s.st[3], 0), $3::int8)::int8
            ELSE 0 END
  FROM n LEFT JOIN up AS u ON true
  LEFT JOIN LATERAL (SELECT CASE WHEN u.a IS NULL THEN @window@($1::bytea) END AS st) AS s
    ON true
