-- fixed_window.lua - a counter per window [k*W, (k+1)*W), aligned on 0.
-- Invariant: the state is "k c" (window index, units consumed in it) with
-- c <= B; a clock stepping back keeps the stored window (never refills).

MAKE.f = function()
    local function fixed_load(P, key)
        local v = redis.call('GET', key)
        if not v then return { 0, 0 } end
        return fields(v, 2)
    end

    -- The (window index, count) in force at `now`.
    local function fixed_view(P, st)
        local now = NOW()
        local k_now = div(now, P.W)
        if cmp(st[1], k_now) >= 0 then return st[1], st[2] end
        return k_now, 0
    end

    local function fixed_decide(P, st, n)
        local now = NOW()
        local k, c = fixed_view(P, st)
        local left = sub(mul(add(k, 1), P.W), now) -- end of window k, from now
        local c2 = add(c, n)
        if cmp(c2, P.B) <= 0 then
            local reset = 0
            if cmp(c2, 0) > 0 then reset = left end
            return true, { k, c2 }, sub(P.B, c2), 0, reset, 0
        end
        return false, st, sub(P.B, c), left, left, 0
    end

    local function fixed_held(P, st)
        local now = NOW()
        local k, c = fixed_view(P, st)
        if cmp(c, 0) > 0 then return sub(mul(add(k, 1), P.W), now) end
        return 0
    end

    local function fixed_store(P, key, st, expire)
        local now = NOW()
        put(key, tostr(st[1]) .. ' ' .. tostr(st[2]), sub(mul(add(st[1], 1), P.W), now), expire)
    end


    return { load = fixed_load, decide = fixed_decide, held = fixed_held, store = fixed_store }
end
