-- gcra.lua - GCRA, which also serves token_bucket and leaky_bucket
-- (policing, and shaping with a delay): docs/algorithms.md, exactly.
-- Invariant: the state is the TAT as decimal text; a denial or a peek
-- never writes, and new_tat - now <= tau after every admission.

MAKE.g = function()
    local function gcra_load(P, key)
        local v = redis.call('GET', key)
        if not v then return 0 end
        return parse(v)
    end

    -- -> allowed, next state, remaining, retry_after, reset_after, delay
    local function gcra_decide(P, tat, now, n)
        local base = max(tat, now)
        local new_tat = add(base, mul(n, P.T))
        local used = sub(new_tat, now)
        if cmp(used, P.tau) <= 0 then
            local delay = 0
            if P.shaping then delay = sub(base, now) end
            return true, new_tat, div(sub(P.tau, used), P.T), 0, used, delay
        end
        local held = sub(base, now)
        local remaining = 0 -- a clock that stepped back: held > tau
        if cmp(held, P.tau) < 0 then remaining = div(sub(P.tau, held), P.T) end
        return false, tat, remaining, sub(used, P.tau), held, 0
    end

    local function gcra_held(P, tat, now)
        return sub(max(tat, now), now)
    end

    local function gcra_store(P, key, tat, now, expire)
        put(key, tostr(tat), sub(tat, now), expire)
    end


    return { load = gcra_load, decide = gcra_decide, held = gcra_held, store = gcra_store }
end
