-- one_lock.sql - the first step of every one-key lean statement (@key_now@
-- in one_gcra.sql, one_window.sql, one_sliding.sql): the check's
-- lock_timeout (@lock@, for the transaction only), the key's advisory lock
-- (the check function's lock class and id: hashtext of the row key's hex),
-- then the clock (@now@), read once the lock is held. MATERIALIZED: it runs
-- once, before the upsert reads it.
WITH n AS MATERIALIZED (
    SELECT CASE
        WHEN @lock@ IS NULL THEN NULL
        WHEN pg_advisory_xact_lock(@lockclass@, hashtext(encode($1::bytea, 'hex')))::text IS NULL
            THEN NULL
        ELSE @now@
    END AS now
)
