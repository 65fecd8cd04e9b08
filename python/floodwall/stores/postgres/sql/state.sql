-- state.sql - the state (TAT) of one row key as committed now: what
-- one_gcra.sql reports a denial from. VOLATILE, so its query takes a fresh
-- snapshot: called by a check that holds the key's locks, it sees the row
-- the check denied on, even when that row was written after the check's
-- statement began. NULL when there is no row.
-- Placeholders: @table@, @state@ (quoted identifiers).

CREATE OR REPLACE FUNCTION @state@(p_key bytea)
RETURNS numeric
LANGUAGE plpgsql VOLATILE
AS $fw$
BEGIN
    RETURN (SELECT x.a FROM @table@ AS x WHERE x.k = p_key);
END;
$fw$;
