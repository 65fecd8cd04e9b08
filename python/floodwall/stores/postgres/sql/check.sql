-- check.sql - the one entry point of the PostgreSQL store: decide a check
-- of `p_costs[i]` units on part i (one row key per rate and user key),
-- all-or-nothing, in one call: the SQL twins of docs/algorithms.md (gcra,
-- token_bucket, leaky_bucket policing and shaping, fixed_window,
-- sliding_window, sliding_log), exact in integer nanoseconds (numeric
-- wherever a value may pass 2^63).
--
-- Arguments: p_now (ns, or NULL to read clock_timestamp(): only tests give
-- a time), then one array item per part: its cost (0 peeks: the part
-- denies when one unit would not be admitted, and charges nothing), the
-- row key, the algorithm code (g gcra family, s leaky-bucket shaping, f fixed window,
-- w sliding window, l sliding log), B, T, tau, W; p_lock_ms (0: wait for
-- locks as long as the statement may).
-- Result: allowed, the index of the deciding part (0-based), remaining,
-- retry_after, reset_after, delay (ns, clamped to 2^63 - 1).
--
-- Invariant: a check holds the row lock of every existing row it may
-- write from its read to its commit, and inserts a row only under the
-- key's advisory lock, so no admitted unit is lost. A check of one key
-- locks its row without waiting when it can (the fast path: no advisory
-- lock, no lock_timeout to set); otherwise, and for several keys, the
-- keys' advisory locks are taken in one canonical order (sorted lock ids,
-- in the lock class of this table) before any row lock, so two checks
-- that touch the same keys in opposite orders never deadlock, and a
-- one-key check waits on at most one thing. Parts are decided in order, each seeing what the parts before
-- it admitted (a key may appear twice); rows are written only when every
-- part is admitted, and only by parts of cost > 0, so a denial or a peek
-- consumes nothing. The one write a denial makes is a repair: a state that
-- a clock excursion left too far ahead of now (docs/algorithms.md, "States
-- the engine does not trust") is read clamped, as the C engine and the Lua
-- scripts clamp it, and a denying part of cost > 0 writes it back clamped.
-- A row's expires is written rounded up to a multiple of @grain@ ns (still
-- never before its state is fresh), so that most writes of an active key
-- leave it unchanged and update the row in place (HOT: no index entry).
-- Expired rows are removed a few at a time by admitting checks (at most
-- @sweep_rows@ rows, on one check in @sweep_every@ on average), skipping rows
-- that another transaction holds: no sweep is ever unbounded.
-- Placeholders: @table@, @check@ (quoted identifiers), @lockclass@ (int4),
-- @sweep_rows@, @sweep_every@, @grain@.

CREATE OR REPLACE FUNCTION @check@(
    p_now bigint,
    p_costs bigint[],
    p_keys bytea[],
    p_algo text[],
    p_b bigint[],
    p_t bigint[],
    p_tau bigint[],
    p_w bigint[],
    p_lock_ms integer,
    OUT allowed boolean,
    OUT part integer,
    OUT remaining bigint,
    OUT retry_after bigint,
    OUT reset_after bigint,
    OUT delay bigint)
LANGUAGE plpgsql VOLATILE
AS $fw$
DECLARE
    I64 CONSTANT numeric := 9223372036854775807;
    np integer := cardinality(p_keys);
    now_ns numeric;
    n bigint;
    peek boolean;
    writes boolean := false;
    found_row boolean;
    i integer;
    j integer;
    h integer;
    owner integer[];
    st @table@[];
    dirty boolean[];
    s @table@;
    r @table@;
    algo text;
    b numeric; t numeric; tau numeric; w numeric;
    ok boolean; rem numeric; retry numeric; reset numeric; dly numeric; held numeric;
    tat numeric; base numeric; nt numeric; used numeric;
    win_left numeric; cnt numeric; c2 numeric; prv numeric; cur numeric;
    over numeric; pw numeric; cap numeric; usage numeric; q numeric; q2 numeric; e2 numeric;
    newest numeric; need numeric; tt numeric;
    slack numeric; reach numeric;
    clamped boolean;
    fixes @table@[];     -- per owner: the clamped state, as read (a repair)
    fixed boolean[];
    all_ok boolean := true;
    pick integer := NULL;
    pick_ok boolean; pick_rem numeric; pick_retry numeric; pick_reset numeric; pick_delay numeric;
    better boolean;
BEGIN
    IF np IS NULL OR np = 0 OR cardinality(p_algo) IS DISTINCT FROM np
       OR cardinality(p_b) IS DISTINCT FROM np OR cardinality(p_t) IS DISTINCT FROM np
       OR cardinality(p_tau) IS DISTINCT FROM np OR cardinality(p_w) IS DISTINCT FROM np
       OR cardinality(p_costs) IS DISTINCT FROM np THEN
        RAISE EXCEPTION 'floodwall: expected one cost, algorithm, B, T, tau and W per key';
    END IF;
    IF p_now IS NOT NULL AND p_now < 0 THEN
        RAISE EXCEPTION 'floodwall: bad time %', p_now;
    END IF;
    FOR i IN 1..np LOOP
        IF p_costs[i] IS NULL OR p_costs[i] < 0 THEN
            RAISE EXCEPTION 'floodwall: cost must be >= 0';
        END IF;
        IF p_costs[i] > p_b[i] THEN
            RAISE EXCEPTION 'floodwall: cost exceeds the capacity';
        END IF;
        IF p_algo[i] NOT IN ('g', 's', 'f', 'w', 'l') OR p_b[i] < 1 OR p_t[i] < 1
           OR p_tau[i] < 1 OR p_w[i] < 1 THEN
            RAISE EXCEPTION 'floodwall: bad part %', i;
        END IF;
    END LOOP;

    -- Lock and load. Every writer holds the row lock of each row it
    -- changes, from its read to its commit; a row is inserted only under
    -- the key's advisory lock, so a missing row cannot appear between a
    -- read and a write.
    IF np = 1 AND p_costs[1] = 0 THEN
        -- a peek of one key: the committed state, no lock
        SELECT * INTO s FROM @table@ WHERE k = p_keys[1];
        found_row := FOUND;
    ELSIF np = 1 THEN
        -- the fast path: one existing row no one holds, locked without
        -- waiting (so with no lock_timeout to set, and no advisory lock)
        SELECT * INTO s FROM @table@ WHERE k = p_keys[1] FOR UPDATE SKIP LOCKED;
        found_row := FOUND;
        IF NOT found_row THEN
            -- missing, or held by another check: wait, boundedly, in turn
            IF p_lock_ms > 0 THEN
                PERFORM set_config('lock_timeout', p_lock_ms::text, true);
            END IF;
            PERFORM pg_advisory_xact_lock(@lockclass@, hashtext(encode(p_keys[1], 'hex')));
            SELECT * INTO s FROM @table@ WHERE k = p_keys[1] FOR UPDATE;
            found_row := FOUND;
        END IF;
    ELSE
        -- several parts: every key's advisory lock, in the canonical order,
        -- before any row lock, so two groups never wait on each other in a
        -- cycle; then each distinct key's row, its state at its first part
        IF p_lock_ms > 0 THEN
            PERFORM set_config('lock_timeout', p_lock_ms::text, true);
        END IF;
        FOR h IN SELECT DISTINCT hashtext(encode(x, 'hex')) FROM unnest(p_keys) AS x ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(@lockclass@, h);
        END LOOP;
        owner := '{}'; st := '{}'; dirty := '{}'; fixes := '{}'; fixed := '{}';
        FOR i IN 1..np LOOP
            j := array_position(p_keys, p_keys[i]);
            owner[i] := j;
            IF j = i THEN
                SELECT * INTO r FROM @table@ WHERE k = p_keys[i] FOR UPDATE;
                IF NOT FOUND THEN
                    r := ROW(p_keys[i], NULL, 0, 0, NULL, NULL, NULL);
                END IF;
                st[i] := r;
                dirty[i] := false;
                fixed[i] := false;
            END IF;
        END LOOP;
    END IF;
    IF np = 1 AND NOT found_row THEN
        s := ROW(p_keys[1], NULL, 0, 0, NULL, NULL, NULL);
    END IF;
    -- The clock is read once the locks are held: a check that waited sees
    -- a time no earlier than the one it waited for.
    IF p_now IS NULL THEN
        now_ns := trunc(extract(epoch FROM clock_timestamp()) * 1000000000);
    ELSE
        now_ns := p_now;
    END IF;

    FOR i IN 1..np LOOP
        peek := p_costs[i] = 0;
        n := CASE WHEN peek THEN 1 ELSE p_costs[i] END;
        IF np > 1 THEN
            j := owner[i];
            s := st[j];
        END IF;
        algo := p_algo[i];
        b := p_b[i]; t := p_t[i]; tau := p_tau[i]; w := p_w[i];
        retry := 0; dly := 0;

        -- A clock excursion: a state further ahead of now than its
        -- algorithm can put it, by more than max(horizon, 1 s), is read as
        -- the C engine reads it (gcra: full at now; a window: the same
        -- counts in now's window; log entries: moved back to the newest
        -- time within reach, or now).
        clamped := false;
        IF algo = 'g' OR algo = 's' THEN
            slack := greatest(tau, 1000000000);
            IF s.a IS NOT NULL AND s.a - now_ns > tau + slack THEN
                s.a := now_ns + tau;
                s.expires := least(now_ns + tau, I64);
                clamped := true;
            END IF;
        ELSIF algo = 'f' OR algo = 'w' THEN
            slack := greatest(w, 1000000000);
            IF s.a IS NOT NULL AND s.a - w - now_ns > slack THEN
                s.a := now_ns + (w - mod(now_ns, w));
                s.expires := least(s.a + CASE WHEN algo = 'w' THEN w ELSE 0 END, I64);
                clamped := true;
            END IF;
        ELSE
            reach := now_ns + greatest(w, 1000000000);
            IF (SELECT max(e.t) FROM unnest(s.lt) AS e(t)) > reach THEN
                base := greatest(now_ns, coalesce(
                    (SELECT max(e.t) FROM unnest(s.lt) AS e(t) WHERE e.t <= reach), now_ns));
                SELECT array_agg(CASE WHEN e.t > reach THEN base::bigint ELSE e.t END
                                 ORDER BY e.o)
                  INTO s.lt
                  FROM unnest(s.lt) WITH ORDINALITY AS e(t, o);
                s.expires := least(base + w, I64);
                clamped := true;
            END IF;
        END IF;
        IF clamped AND np > 1 THEN
            st[j] := s;
            IF NOT fixed[j] AND NOT peek THEN
                fixes[j] := s;
                fixed[j] := true;
            END IF;
        END IF;

        IF algo = 'g' OR algo = 's' THEN
            -- GCRA: state is the TAT; a fresh key has TAT <= now.
            tat := coalesce(s.a, 0);
            base := greatest(tat, now_ns);
            held := base - now_ns;
            nt := base + n * t;
            used := nt - now_ns;
            IF used <= tau THEN
                ok := true;
                rem := div(tau - used, t);
                reset := used;
                IF algo = 's' THEN dly := held; END IF;
                s.a := nt;
                s.expires := least(nt, I64);
            ELSE
                ok := false;
                rem := CASE WHEN held < tau THEN div(tau - held, t) ELSE 0 END;
                retry := used - tau;
                reset := held;
            END IF;

        ELSIF algo = 'f' THEN
            -- fixed window: a = the end of the window in force, c = its count.
            IF s.a IS NOT NULL AND s.a > now_ns THEN
                win_left := s.a - now_ns;
                cnt := least(greatest(s.c, 0), b);
            ELSE
                win_left := w - mod(now_ns, w);
                cnt := 0;
            END IF;
            held := CASE WHEN cnt > 0 THEN win_left ELSE 0 END;
            c2 := cnt + n;
            IF c2 <= b THEN
                ok := true;
                rem := b - c2;
                reset := win_left;
                s.a := now_ns + win_left;
                s.c := c2;
                s.expires := least(now_ns + win_left, I64);
            ELSE
                ok := false;
                rem := b - cnt;
                retry := win_left;
                reset := win_left;
            END IF;

        ELSIF algo = 'w' THEN
            -- sliding window: a = the end of the current window, p and c the
            -- previous and current counts.
            IF s.a IS NOT NULL AND s.a > now_ns THEN
                win_left := s.a - now_ns;
                prv := least(greatest(s.p, 0), b);
                cur := least(greatest(s.c, 0), b);
            ELSIF s.a IS NOT NULL AND s.a + w > now_ns THEN
                win_left := s.a + w - now_ns;
                prv := least(greatest(s.c, 0), b);
                cur := 0;
            ELSE
                win_left := w - mod(now_ns, w);
                prv := 0;
                cur := 0;
            END IF;
            held := CASE WHEN cur > 0 THEN win_left + w WHEN prv > 0 THEN win_left ELSE 0 END;
            over := least(win_left, w);
            pw := prv * over;
            cap := b * w;
            ok := pw + (cur + n) * w <= cap;
            c2 := CASE WHEN ok THEN cur + n ELSE cur END;
            usage := pw + c2 * w;
            rem := CASE WHEN usage < cap THEN div(cap - usage, w) ELSE 0 END;
            reset := CASE WHEN c2 > 0 THEN win_left + w WHEN prv > 0 THEN win_left ELSE 0 END;
            IF ok THEN
                s.a := now_ns + win_left;
                s.p := prv;
                s.c := c2;
                s.expires := least(now_ns + win_left + w, I64);
            ELSE
                q := 0;
                IF cur + n <= b AND prv > 0 THEN
                    q := div((b - cur - n) * w, prv);
                END IF;
                IF q > 0 THEN
                    retry := win_left - q;
                ELSE
                    e2 := 0;
                    IF cur > 0 THEN
                        q2 := div((b - n) * w, cur);
                        IF q2 < w THEN e2 := w - q2; END IF;
                    END IF;
                    retry := win_left + e2;
                END IF;
            END IF;

        ELSE
            -- sliding log: (lt, ln) entries ordered by time; live while
            -- t + W > now.
            SELECT coalesce(sum(greatest(e.u, 0)), 0), max(e.t) INTO used, newest
              FROM unnest(s.lt, s.ln) AS e(t, u) WHERE e.t::numeric + w > now_ns;
            held := CASE WHEN newest IS NULL THEN 0 ELSE newest + w - now_ns END;
            IF used + n <= b THEN
                ok := true;
                rem := b - used - n;
                newest := greatest(coalesce(newest, now_ns), now_ns);
                reset := newest + w - now_ns;
                SELECT array_agg(x.t ORDER BY x.t, x.o), array_agg(x.u ORDER BY x.t, x.o)
                  INTO s.lt, s.ln
                  FROM (SELECT e.t, e.u, e.o
                          FROM unnest(s.lt, s.ln) WITH ORDINALITY AS e(t, u, o)
                         WHERE e.t::numeric + w > now_ns
                        UNION ALL
                        SELECT now_ns::bigint, n, 9223372036854775807) AS x;
                s.c := used + n;
                s.expires := least(newest + w, I64);
            ELSE
                ok := false;
                rem := greatest(b - used, 0);
                reset := held;
                need := used + n - b;
                SELECT x.t INTO tt
                  FROM (SELECT e.t, sum(greatest(e.u, 0)) OVER (ORDER BY e.t, e.o
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS acc
                          FROM unnest(s.lt, s.ln) WITH ORDINALITY AS e(t, u, o)
                         WHERE e.t::numeric + w > now_ns) AS x
                 WHERE x.acc >= need ORDER BY x.t LIMIT 1;
                retry := CASE WHEN tt IS NULL THEN 0 ELSE tt + w - now_ns END;
            END IF;
        END IF;

        IF peek THEN
            -- what one unit would get, with the state as it is
            IF ok THEN rem := rem + 1; END IF;
            reset := held;
        ELSIF ok THEN
            writes := true;
            IF np > 1 THEN
                st[j] := s;
                dirty[j] := true;
            END IF;
        END IF;

        -- the deciding part: when denied, the longest wait; else the fewest left
        IF pick IS NULL THEN
            better := true;
        ELSIF ok <> pick_ok THEN
            better := NOT ok;
        ELSIF ok THEN
            better := rem < pick_rem;
        ELSE
            better := retry > pick_retry;
        END IF;
        IF better THEN
            pick := i; pick_ok := ok; pick_rem := rem; pick_retry := retry;
            pick_reset := reset; pick_delay := dly;
        END IF;
        IF NOT ok THEN all_ok := false; END IF;
    END LOOP;

    IF all_ok AND writes AND np = 1 AND found_row THEN
        -- the row is ours (locked since it was read): a plain update
        UPDATE @table@ SET a = s.a, p = s.p, c = s.c, lt = s.lt, ln = s.ln,
                           expires = least(div(s.expires::numeric + (@grain@ - 1), @grain@)
                                           * @grain@, 9223372036854775807)::bigint
         WHERE k = s.k;
    ELSIF all_ok AND writes THEN
        FOR i IN 1..np LOOP
            IF np > 1 THEN
                IF owner[i] <> i OR NOT dirty[i] THEN
                    CONTINUE;
                END IF;
                s := st[i];
            END IF;
            INSERT INTO @table@ AS x (k, a, p, c, lt, ln, expires)
                 VALUES (s.k, s.a, s.p, s.c, s.lt, s.ln,
                         least(div(s.expires::numeric + (@grain@ - 1), @grain@) * @grain@,
                               9223372036854775807)::bigint)
            ON CONFLICT (k) DO UPDATE
                 SET a = EXCLUDED.a, p = EXCLUDED.p, c = EXCLUDED.c,
                     lt = EXCLUDED.lt, ln = EXCLUDED.ln, expires = EXCLUDED.expires;
        END LOOP;
    END IF;
    IF NOT all_ok THEN
        -- repairs: the clamped states of denying checks, as they were read
        IF np = 1 AND clamped AND p_costs[1] > 0 THEN
            UPDATE @table@ SET a = s.a, lt = s.lt,
                               expires = least(div(s.expires::numeric + (@grain@ - 1), @grain@)
                                               * @grain@, 9223372036854775807)::bigint
             WHERE k = s.k;
        ELSIF np > 1 THEN
            FOR i IN 1..np LOOP
                IF owner[i] = i AND fixed[i] THEN
                    UPDATE @table@ SET a = fixes[i].a, lt = fixes[i].lt,
                                       expires = least(div(fixes[i].expires::numeric
                                                           + (@grain@ - 1), @grain@) * @grain@,
                                                       9223372036854775807)::bigint
                     WHERE k = fixes[i].k;
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF all_ok AND writes THEN
        -- Bounded cleanup: a few expired rows, never one another
        -- transaction holds (its owner may be about to write it); only on
        -- the database's clock (a test clock's times mean nothing to it).
        IF p_now IS NULL AND random() * @sweep_every@ < 1 THEN
            -- found through the expiry index, deleted by key (a generic
            -- plan never turns this into a scan of the table)
            DELETE FROM @table@ AS x
             WHERE x.k = ANY (ARRAY(SELECT y.k FROM @table@ AS y
                                     WHERE y.expires < now_ns::bigint
                                     ORDER BY y.expires
                                     LIMIT @sweep_rows@
                                     FOR UPDATE SKIP LOCKED))
               AND x.expires < now_ns::bigint;
        END IF;
    END IF;

    allowed := pick_ok;
    part := pick - 1;
    remaining := least(greatest(pick_rem, 0), I64)::bigint;
    retry_after := least(greatest(pick_retry, 0), I64)::bigint;
    reset_after := least(greatest(pick_reset, 0), I64)::bigint;
    delay := least(greatest(pick_delay, 0), I64)::bigint;
END;
$fw$;
