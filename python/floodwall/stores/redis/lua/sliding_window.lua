-- sliding_window.lua - the two-window weighted counter: the previous
-- window's count weighted by its overlap with the rolling window, plus the
-- current window's count. Admission compares exact integers.
-- Invariant: the state is "E p c": the end of the current window,
-- E = (k+1)*W (decimal ns), and the previous and current counts (<= B).
-- With left = E - now: the stored window is in force iff left > 0; it is
-- the previous one iff -W < left <= 0; else both are over. A window
-- starting more than max(W, 1 s) after now (a clock excursion) is read as
-- now's window with the same counts (window_end, common.lua).
--
-- Decisions need only left, found relative to now on plain numbers when
-- the state is within 2^52 ns of now (or for a new window of whole
-- seconds), else exactly; the products go through bignum.lua, which stays
-- on plain numbers below 2^53.

MAKE.w = function()
    local function sliding_load(P, key)
        local v = redis.call('GET', key)
        if not v then return false end
        local e, p, c = v:match('^(%d+) (%d+) (%d+)$')
        if not e then error('floodwall: damaged state: ' .. v) end
        local e2, clamped = window_end(P.W, e)
        return { e = e2, p = num(p), c = num(c), clamped = clamped }
    end

    -- (left = E - now > 0, prev, cur) in force.
    local function view(P, st)
        local W = P.W
        if st then
            local d = minus_now(st.e)
            if d ~= nil and type(W) ~= 'table' and W < SMALL then
                if d > 0 then return d, st.p, st.c end
                if d > -W then return d + W, st.c, 0 end
            else
                local e, now = parse(st.e), NOW()
                if cmp(e, now) > 0 then return sub(e, now), st.p, st.c end
                local e2 = add(e, W)
                if cmp(e2, now) > 0 then return sub(e2, now), st.c, 0 end
            end
        end
        return window_left(W), 0, 0 -- a new window
    end

    local function reset_of(P, left, prev, cur)
        if cmp(cur, 0) > 0 then return add(left, P.W) end -- (k+2)*W - now
        if cmp(prev, 0) > 0 then return left end          -- (k+1)*W - now
        return 0
    end

    local function sliding_decide(P, st, n)
        local W, B = P.W, P.B
        local left, prev, cur = view(P, st)
        local over = left -- W - e: how much of the previous window still counts
        if cmp(over, W) > 0 then over = W end
        local pw = mul(prev, over)
        local cap = mul(B, W)
        local allowed = cmp(add(pw, mul(add(cur, n), W)), cap) <= 0
        local cur2 = cur
        if allowed then cur2 = add(cur, n) end
        local usage = add(pw, mul(cur2, W))
        local remaining = 0
        if cmp(usage, cap) < 0 then remaining = div(sub(cap, usage), W) end
        local reset = reset_of(P, left, prev, cur2)
        if allowed then return true, { left = left, p = prev, c = cur2 }, remaining, 0, reset, 0 end
        local cn = add(cur, n)
        local q = 0
        if cmp(cn, B) <= 0 and cmp(prev, 0) > 0 then
            q = div(mul(sub(B, cn), W), prev) -- (X*W) // prev
        end
        local retry
        if cmp(q, 0) > 0 then
            retry = sub(left, q) -- k*W + (W - q) - now; q < W - e <= left
        else -- wait into window k+1
            local e2 = 0
            if cmp(cur, 0) > 0 then
                local q2 = div(mul(sub(B, n), W), cur)
                if cmp(q2, W) < 0 then e2 = sub(W, q2) end
            end
            retry = add(left, e2)
        end
        return false, st, remaining, retry, reset, 0
    end

    local function sliding_held(P, st)
        local left, prev, cur = view(P, st)
        return reset_of(P, left, prev, cur)
    end

    local function sliding_store(P, key, st, expire)
        local text = now_plus_any(st.left) .. ' ' .. tostr(st.p) .. ' ' .. tostr(st.c)
        put(key, text, add(st.left, P.W), expire) -- cur > 0: fresh at E + W
    end

    -- a clamped state written back as it was read (window_end)
    local function sliding_repair(P, key, st, expire)
        local left, prev, cur = view(P, st)
        sliding_store(P, key, { left = left, p = prev, c = cur }, expire)
    end

    return { load = sliding_load, decide = sliding_decide, held = sliding_held,
             store = sliding_store, repair = sliding_repair }
end
