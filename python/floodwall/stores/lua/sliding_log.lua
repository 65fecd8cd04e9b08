-- sliding_log.lua - the exact rolling window: a log of (time, units)
-- entries; a request passes iff the units younger than W plus its own fit
-- in B.
-- Invariant: the log is one hash: fields h (oldest index), t (next index),
-- u (units held by entries h..t-1) and one field per entry, "<index>" =
-- "<time> <units>", ordered by time (an entry from a clock that stepped
-- back is inserted in place), so the dead entries are always a prefix.
-- A denial or a peek never writes.

MAKE.l = function()
    local function idx(j) return string.format('%.0f', j) end

    -- Entry j of the log: time, units (read once per script call).
    local function log_ent(st, j)
        local e = st.ents[j]
        if e then return e[1], e[2] end
        local raw = redis.call('HGET', st.key, idx(j))
        if not raw then error('floodwall: damaged log: entry ' .. idx(j) .. ' missing') end
        local a, b = raw:match('^(%d+) (%d+)$')
        if not a then error('floodwall: damaged log entry: ' .. raw) end
        e = { parse(a), tonumber(b) }
        st.ents[j] = e
        return e[1], e[2]
    end

    -- Load and (in this script's view only) drop the entries dead at `now`.
    local function log_load(P, key)
        local now = NOW()
        local m = redis.call('HMGET', key, 'h', 't', 'u')
        local st = { key = key, h = tonumber(m[1] or '0'), t = tonumber(m[2] or '0'),
                     u = tonumber(m[3] or '0'), ents = {}, pend = 0 }
        local i = st.h
        while i < st.t do
            local et, en = log_ent(st, i)
            if cmp(add(et, P.W), now) > 0 then break end
            st.u = st.u - en
            i = i + 1
        end
        st.i = i
        return st
    end

    -- Time of the newest live entry (nil if none); `pend` units admitted in
    -- this script call count as an entry at `now`.
    local function log_newest(st, pend)
        local now = NOW()
        local newest
        if st.i < st.t then newest = log_ent(st, st.t - 1) end
        if pend then
            if newest == nil or cmp(now, newest) > 0 then newest = now end
        end
        return newest
    end

    -- Walk live entries oldest first: when have `need` units expired?
    local function log_walk(P, st, need)
        local now = NOW()
        local acc = 0
        local pend_done = st.pend == 0
        for j = st.i, st.t - 1 do
            local t, c = log_ent(st, j)
            if not pend_done and cmp(t, now) > 0 then
                pend_done = true
                acc = acc + st.pend
                if acc >= need then return P.W end
            end
            acc = acc + c
            if acc >= need then return sub(add(t, P.W), now) end
        end
        if not pend_done and acc + st.pend >= need then return P.W end
        return 0
    end

    local function log_decide(P, st, n)
        local now = NOW()
        local used = st.u + st.pend
        if used + n <= P.B then
            local nst = { key = st.key, h = st.h, t = st.t, u = st.u, i = st.i,
                          ents = st.ents, pend = st.pend + n }
            local reset = sub(add(log_newest(st, true), P.W), now)
            return true, nst, P.B - used - n, 0, reset, 0
        end
        local reset = 0
        local newest = log_newest(st, st.pend > 0)
        if newest then reset = sub(add(newest, P.W), now) end
        return false, st, P.B - used, log_walk(P, st, used + n - P.B), reset, 0
    end

    local function log_held(P, st)
        local now = NOW()
        local newest = log_newest(st, st.pend > 0)
        if newest then return sub(add(newest, P.W), now) end
        return 0
    end

    local function log_store(P, key, st, expire)
        local now = NOW()
        -- forget the dead prefix
        local dead = {}
        for j = st.h, st.i - 1 do
            dead[#dead + 1] = idx(j)
            if #dead == 512 then
                redis.call('HDEL', key, unpack(dead))
                dead = {}
            end
        end
        if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
        local entry = tostr(now) .. ' ' .. idx(st.pend)
        local h, t = st.i, st.t
        local newest = now
        if h == t then -- nothing live: start numbering again
            h, t = 0, 0
            redis.call('HSET', key, '0', entry)
        else
            local last = log_ent(st, t - 1)
            if cmp(last, now) <= 0 then
                redis.call('HSET', key, idx(t), entry)
            else -- the clock stepped back: insert in time order
                newest = last
                local args = {}
                local j = t - 1
                while j >= h do
                    local et, en = log_ent(st, j)
                    if cmp(et, now) <= 0 then break end
                    args[#args + 1] = idx(j + 1)
                    args[#args + 1] = tostr(et) .. ' ' .. idx(en)
                    j = j - 1
                end
                args[#args + 1] = idx(j + 1)
                args[#args + 1] = entry
                redis.call('HSET', key, unpack(args))
            end
        end
        redis.call('HSET', key, 'h', idx(h), 't', idx(t + 1), 'u', idx(st.u + st.pend))
        if expire then
            redis.call('PEXPIRE', key, ttl_ms(sub(add(newest, P.W), now)))
        end
    end


    return { load = log_load, decide = log_decide, held = log_held, store = log_store }
end
