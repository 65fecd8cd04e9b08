-- one_sweep.sql - the bounded sweep of one_gcra.sql and many_gcra.sql, as
-- one more CTE of their statement: at most @sweep_rows@ expired rows,
-- oldest first through the expiry index, never a row of the checked key (the check owns it) and
-- never a row another transaction holds; only when the check admitted
-- (a denial writes nothing). The rows are found by the expiry index and
-- deleted by their keys, whatever plan a prepared statement settles on.
-- Placeholders: @table@, @sweep_rows@, @mine@ (the condition that y.k is
-- none of the check's keys); the CTEs n (the clock) and up (the admitted
-- write).
, sweep AS (
    DELETE FROM @table@ AS x
     WHERE x.k = ANY (ARRAY(
               SELECT y.k FROM @table@ AS y
                WHERE y.expires < (SELECT n.now FROM n)::bigint AND @mine@
                ORDER BY y.expires
                LIMIT @sweep_rows@
                FOR UPDATE SKIP LOCKED))
       AND x.expires < (SELECT n.now FROM n)::bigint
       AND EXISTS (SELECT FROM up)
)
