-- schema.sql - the tables of the PostgreSQL store, created once under an
-- advisory lock (schema.py): the state table, its expiry index, and the
-- meta table holding the schema version.
-- Invariant: a row's `expires` (ns since the epoch, by the database clock)
-- is never earlier than the moment its state becomes indistinguishable
-- from a fresh key, on the clock of the check that wrote it (the
-- database's, or a test clock; only the database's clock sweeps).
-- Placeholders: @table@, @meta@, @index@ (quoted, validated identifiers),
-- @unlogged@ (empty or UNLOGGED), @version@.

CREATE @unlogged@ TABLE IF NOT EXISTS @table@ (
    k       bytea PRIMARY KEY,   -- the key name (a hash of the user key)
    a       numeric,             -- TAT (gcra family), end of the window in force (windows)
    p       bigint NOT NULL DEFAULT 0,  -- previous window's count (sliding_window)
    c       bigint NOT NULL DEFAULT 0,  -- current window's count (windows)
    lt      bigint[],            -- sliding_log: entry times, oldest first
    ln      bigint[],            -- sliding_log: entry units
    expires bigint               -- when the state is fresh again (ns)
);

CREATE INDEX IF NOT EXISTS @index@ ON @table@ (expires);

CREATE TABLE IF NOT EXISTS @meta@ (
    name  text PRIMARY KEY,
    value text NOT NULL
);

INSERT INTO @meta@ (name, value) VALUES ('schema_version', '@version@')
    ON CONFLICT (name) DO NOTHING;
