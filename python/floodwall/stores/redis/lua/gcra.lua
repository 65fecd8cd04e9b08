-- gcra.lua - GCRA, which also serves token_bucket and leaky_bucket
-- (policing, and shaping with a delay): docs/algorithms.md, exactly.
-- Invariant: the stored state is the TAT as decimal text; a denial or a
-- peek never writes, and new_tat - now <= tau after every admission. A
-- TAT further ahead than tau + max(tau, 1 s) (a clock excursion) is read
-- as now + tau, as the C engine clamps it.
--
-- Every result depends only on tat - now, so the common case (tau below
-- 2^52 ns, about 52 days, and a TAT near now) runs on plain numbers
-- relative to now: state { d = tat - now }, with any d <= 0 meaning "not
-- ahead of now" (the same decisions as a fresh key). Anything else runs
-- on exact big integers: state { a = tat }.

MAKE.g = function()
    -- A TAT more than tau + max(tau, 1 s) after now is a clock excursion:
    -- read as "full at now", tat = now + tau.
    local function excursion(P, ahead)
        return cmp(ahead, add(P.tau, slack(P.tau))) > 0
    end

    local function full_at_now(P)
        if type(P.tau) ~= 'table' then return { d = P.tau, clamped = true } end
        return { a = add(NOW(), P.tau), clamped = true }
    end

    local function gcra_load(P, key)
        local v = redis.call('GET', key)
        if not v then return { d = 0 } end
        local d = minus_now(v)
        if d == nil then
            local a = parse(v)
            local now = NOW()
            if cmp(a, now) <= 0 then return { d = 0 } end
            if excursion(P, sub(a, now)) then return full_at_now(P) end
            return { a = a }
        end
        if d > 0 and cmp(d, P.tau) > 0 and excursion(P, d) then return full_at_now(P) end
        return { d = d }
    end

    -- tau <= 2^52 and tat - now <= tau: every sum below stays <= 2^53
    local function fast(P, st)
        local tau = P.tau
        return st.d ~= nil and type(tau) ~= 'table' and tau <= SMALL and st.d <= tau
    end

    local function absolute(st)
        if st.a then return st.a end
        if st.d > 0 then return add(NOW(), st.d) end
        return NOW()
    end

    -- The decision on plain numbers: d = tat - now (any d <= 0 meaning
    -- "not ahead"), tau <= 2^52 and d <= tau, so every sum stays <= 2^53.
    -- -> allowed, tat - now to keep if allowed, remaining, retry, reset, delay
    local function small(P, d, n)
        local T, tau = P.T, P.tau
        local held = d
        if held < 0 then held = 0 end
        local used = held + n * T -- <= 2^53: exact
        if used <= tau then
            local delay = 0
            if P.shaping then delay = held end
            local left = tau - used
            return true, used, (left - fmod(left, T)) / T, 0, used, delay
        end
        local remaining = 0
        if held < tau then
            local left = tau - held
            remaining = (left - fmod(left, T)) / T
        end
        return false, d, remaining, used - tau, held, 0
    end

    -- -> allowed, next state, remaining, retry_after, reset_after, delay
    local function gcra_decide(P, st, n)
        if fast(P, st) then
            local ok, d, rem, retry, reset, delay = small(P, st.d, n)
            if ok then return true, { d = d }, rem, retry, reset, delay end
            return false, st, rem, retry, reset, delay
        end
        local now = NOW()
        local tat = absolute(st)
        local base = max(tat, now)
        local new_tat = add(base, mul(n, P.T))
        local used = sub(new_tat, now)
        if cmp(used, P.tau) <= 0 then
            local delay = 0
            if P.shaping then delay = sub(base, now) end
            return true, { a = new_tat }, div(sub(P.tau, used), P.T), 0, used, delay
        end
        local held = sub(base, now)
        local remaining = 0 -- a clock that stepped back: held > tau
        if cmp(held, P.tau) < 0 then remaining = div(sub(P.tau, held), P.T) end
        return false, st, remaining, sub(used, P.tau), held, 0
    end

    local function gcra_held(P, st)
        if st.d then
            if st.d > 0 then return st.d end
            return 0
        end
        local now = NOW()
        return sub(max(st.a, now), now)
    end

    local function gcra_store(P, key, st, expire)
        if st.d then
            put(key, now_plus(st.d), st.d, expire)
        else
            put(key, tostr(st.a), sub(st.a, NOW()), expire)
        end
    end

    -- A whole check of n >= 1 units on one key in the common case (the
    -- state and quota on plain numbers): load, decide and store as above,
    -- without building a state table. -> allowed, remaining, retry, reset,
    -- delay; or nil, having written nothing, when the general path must
    -- decide (it reads the key again).
    local function gcra_quick(P, key, n, expire)
        local tau = P.tau
        if type(tau) == 'table' or tau > SMALL or type(n) == 'table' then return nil end
        local v = redis.call('GET', key)
        local d = 0
        if v then
            d = minus_now(v)
            if d == nil or d > tau then return nil end
        end
        local ok, nd, rem, retry, reset, delay = small(P, d, n)
        if ok then put(key, now_plus(nd), nd, expire) end
        return ok, rem, retry, reset, delay
    end

    -- gcra_store writes a clamped state back as it is
    return { load = gcra_load, decide = gcra_decide, held = gcra_held, store = gcra_store,
             repair = gcra_store, quick = gcra_quick }
end
