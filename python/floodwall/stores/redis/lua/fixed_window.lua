-- fixed_window.lua - a counter per window [k*W, (k+1)*W), aligned on 0.
-- Invariant: the state is "E c": the end of the window in force,
-- E = (k+1)*W (decimal ns), and the units consumed in it, c <= B. The
-- window in force at `now` is the stored one iff E > now (a clock stepping
-- back keeps it: it never refills); else a new window starts with c = 0.
-- A window starting more than max(W, 1 s) after now (a clock excursion)
-- is read as now's window with the same count (window_end, common.lua).
--
-- Decisions need only left = E - now, found relative to now on plain
-- numbers when the state is within 2^52 ns of now (or for a new window of
-- whole seconds), else exactly.

MAKE.f = function()
    local function fixed_load(P, key)
        local v = redis.call('GET', key)
        if not v then return false end
        local e, c = v:match('^(%d+) (%d+)$')
        if not e then error('floodwall: damaged state: ' .. v) end
        local e2, clamped = window_end(P.W, e)
        return { e = e2, c = num(c), clamped = clamped }
    end

    -- (left = E - now > 0, count) of the window in force.
    local function view(P, st)
        local W = P.W
        if st then
            local d = minus_now(st.e)
            if d ~= nil and type(W) ~= 'table' and W < SMALL then
                if d > 0 then return d, st.c end   -- the stored window
                if d > -W then return d + W, 0 end -- the next one
            else
                local e, now = parse(st.e), NOW()
                if cmp(e, now) > 0 then return sub(e, now), st.c end
            end
        end
        return window_left(W), 0 -- a new window
    end

    local function fixed_decide(P, st, n)
        local B = P.B
        local left, c = view(P, st)
        local c2 = add(c, n)
        if cmp(c2, B) <= 0 then return true, { left = left, c = c2 }, sub(B, c2), 0, left, 0 end
        return false, st, sub(B, c), left, left, 0
    end

    local function fixed_held(P, st)
        local left, c = view(P, st)
        if cmp(c, 0) > 0 then return left end
        return 0
    end

    local function fixed_store(P, key, st, expire)
        put(key, now_plus_any(st.left) .. ' ' .. tostr(st.c), st.left, expire)
    end

    -- a clamped state written back as it was read (window_end)
    local function fixed_repair(P, key, st, expire)
        local left, c = view(P, st)
        fixed_store(P, key, { left = left, c = c }, expire)
    end

    return { load = fixed_load, decide = fixed_decide, held = fixed_held, store = fixed_store,
             repair = fixed_repair }
end
