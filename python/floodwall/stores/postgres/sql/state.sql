-- state.sql - the state of one row key as committed now: its TAT, what
-- one_gcra.sql reports a denial from and what many_gcra.sql decides on,
-- and a window's (end, previous count, count), what one_window.sql
-- reports a denial from.
-- VOLATILE, so its query takes a fresh snapshot: called by a check that
-- holds the key's advisory lock, it sees the latest committed row, even
-- one written after the check's statement began. With p_lock, the row is
-- locked too (FOR UPDATE: a writer that takes no advisory lock, the check
-- function's one-key fast path, waits for the check). NULL when there is
-- no row.
-- Placeholders: @table@, @state@, @window@ (quoted identifiers).

CREATE OR REPLACE FUNCTION @state@(p_key bytea, p_lock boolean)
RETURNS numeric
LANGUAGE plpgsql VOLATILE
AS $fw$
DECLARE
    tat numeric;
BEGIN
    IF p_lock THEN
        SELECT x.a INTO tat FROM @table@ AS x WHERE x.k = p_key FOR UPDATE;
    ELSE
        SELECT x.a INTO tat FROM @table@ AS x WHERE x.k = p_key;
    END IF;
    RETURN tat;
END;
$fw$;

CREATE OR REPLACE FUNCTION @window@(p_key bytea)
RETURNS numeric[]
LANGUAGE plpgsql VOLATILE
AS $fw$
DECLARE
    st numeric[];
BEGIN
    SELECT ARRAY[x.a, x.p, x.c] INTO st FROM @table@ AS x WHERE x.k = p_key;
    RETURN st;
END;
$fw$;
