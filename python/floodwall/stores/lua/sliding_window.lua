-- sliding_window.lua - the two-window weighted counter: the previous
-- window's count weighted by its overlap with the rolling window, plus the
-- current window's count. Admission compares exact integers.
-- Invariant: the state is "k p c" (window index, previous count, current
-- count), each count <= B.

MAKE.w = function()
    local function sliding_load(P, key)
        local v = redis.call('GET', key)
        if not v then return { 0, 0, 0 } end
        return fields(v, 3)
    end

    -- The (k, prev, cur) in force at `now`.
    local function sliding_view(P, st)
        local now = NOW()
        local k_now = div(now, P.W)
        local c = cmp(st[1], k_now)
        if c >= 0 then return st[1], st[2], st[3] end
        if cmp(add(st[1], 1), k_now) == 0 then return k_now, st[3], 0 end
        return k_now, 0, 0
    end

    local function sliding_reset(P, k, prev, cur)
        local now = NOW()
        if cmp(cur, 0) > 0 then return sub(mul(add(k, 2), P.W), now) end
        if cmp(prev, 0) > 0 then return sub(mul(add(k, 1), P.W), now) end
        return 0
    end

    local function sliding_decide(P, st, n)
        local now = NOW()
        local W, B = P.W, P.B
        local k, prev, cur = sliding_view(P, st)
        local kw = mul(k, W)
        local e = 0
        if cmp(now, kw) > 0 then e = sub(now, kw) end
        local pw = mul(prev, sub(W, e)) -- prev * (W - e)
        local cap = mul(B, W)
        local allowed = cmp(add(pw, mul(add(cur, n), W)), cap) <= 0
        local cur2, state = cur, st
        if allowed then
            cur2 = add(cur, n)
            state = { k, prev, cur2 }
        end
        local usage = add(pw, mul(cur2, W))
        local remaining = 0
        if cmp(usage, cap) < 0 then remaining = div(sub(cap, usage), W) end
        local reset = sliding_reset(P, k, prev, cur2)
        if allowed then return true, state, remaining, 0, reset, 0 end
        local retry
        local cn = add(cur, n)
        local q = 0
        if cmp(cn, B) <= 0 and cmp(prev, 0) > 0 then
            q = div(mul(sub(B, cn), W), prev) -- (X*W) // prev
        end
        if cmp(q, 0) > 0 then
            retry = sub(sub(add(kw, W), q), now) -- k*W + (W - q) - now
        else -- wait into window k+1
            local e2 = 0
            if cmp(cur, 0) > 0 then
                local q2 = div(mul(sub(B, n), W), cur)
                if cmp(q2, W) < 0 then e2 = sub(W, q2) end
            end
            retry = sub(add(add(kw, W), e2), now)
        end
        return false, st, remaining, retry, reset, 0
    end

    local function sliding_held(P, st)
        local now = NOW()
        local k, prev, cur = sliding_view(P, st)
        return sliding_reset(P, k, prev, cur)
    end

    local function sliding_store(P, key, st, expire)
        local now = NOW()
        local text = tostr(st[1]) .. ' ' .. tostr(st[2]) .. ' ' .. tostr(st[3])
        put(key, text, sliding_reset(P, st[1], st[2], st[3]), expire)
    end


    return { load = sliding_load, decide = sliding_decide, held = sliding_held, store = sliding_store }
end
