-- sliding_log.lua - the exact rolling window: a log of (time, units)
-- entries; a request passes iff the units younger than W plus its own fit
-- in B.
-- Invariant: the log is one hash: fields h (oldest index), t (next index),
-- u (units held by entries h..t-1), o and z (the times of entries h and
-- t-1, so that an admission reads no entry) and one field per entry,
-- "<index>" = "<time> <units>", ordered by time (an entry from a clock
-- that stepped back is inserted in place), so the dead entries are always
-- a prefix. A denial or a peek never writes. Entries more than max(W, 1 s)
-- ahead of now (a clock excursion) are read as if at the newest time
-- within reach (log_clamp).
--
-- Times are compared as offsets: with W <= 2^51, t - now + 2^52 (now is
-- then 2^52, and every live entry a plain number unless it lies far in the
-- future); with a larger W, the exact times themselves.

MAKE.l = function()
    local BASE = SMALL -- the offset of now
    local W_FAST = 2251799813685248 -- 2^51

    local function idx(j) return string.format('%.0f', j) end

    -- The offset of a time written as decimal text; false when the entry
    -- is dead for sure (more than W before now).
    local function offset(st, text)
        if st.fast then
            local d, ahead = minus_now(text)
            if d ~= nil then
                if d <= -st.W then return false end
                return d + BASE
            end
            if not ahead then return false end -- far in the past
            return sub(add(parse(text), BASE), NOW())
        end
        return parse(text)
    end

    -- Entry j of the log: offset, units, text (read once per script call).
    local function log_ent(st, j)
        local e = st.ents[j]
        if e then return e[1], e[2], e[3] end
        local raw = redis.call('HGET', st.key, idx(j))
        if not raw then error('floodwall: damaged log: entry ' .. idx(j) .. ' missing') end
        local a, b = raw:match('^(%d+) (%d+)$')
        if not a then error('floodwall: damaged log entry: ' .. raw) end
        e = { offset(st, a), tonumber(b), a }
        st.ents[j] = e
        return e[1], e[2], e[3]
    end

    local function live(st, off)
        return off and cmp(add(off, st.W), st.now) > 0
    end

    -- A clock excursion: the newest entries lie more than max(W, 1 s) ahead
    -- of now. In this script's view, each of them is moved back to the
    -- newest time not that far ahead, or now if later (so the log stays in
    -- time order), as the C engine clamps them; an admission writes the
    -- moved entries back (st.moved: their indices), a denial or a peek
    -- writes nothing.
    local function log_clamp(st)
        if st.i >= st.t or not st.z then return end
        local reach = add(st.now, slack(st.W))
        st.zoff = offset(st, st.z)
        if cmp(st.zoff, reach) <= 0 then return end
        local j = st.t - 1
        while j >= st.i do
            local off = log_ent(st, j)
            if cmp(off, reach) <= 0 then break end
            j = j - 1
        end
        local base, base_text = st.now, now_plus(0)
        if j >= st.i then
            local off, _, text = log_ent(st, j)
            if cmp(off, base) > 0 then base, base_text = off, text end
        else
            st.o = base_text -- every live entry moved: the oldest too
        end
        st.clamped, st.moved = true, {}
        for k = j + 1, st.t - 1 do
            local e = st.ents[k]
            st.ents[k] = { base, e[2], base_text }
            st.moved[#st.moved + 1] = k
        end
        st.z, st.zoff = base_text, base
    end

    -- Load and (in this script's view only) drop the entries dead at `now`.
    local function log_load(P, key)
        local m = redis.call('HMGET', key, 'h', 't', 'u', 'o', 'z')
        local W = P.W
        local fast = type(W) ~= 'table' and W <= W_FAST
        local st = { key = key, h = tonumber(m[1] or '0'), t = tonumber(m[2] or '0'),
                     u = tonumber(m[3] or '0'), o = m[4] or nil, z = m[5] or nil,
                     ents = {}, pend = 0, W = W, fast = fast }
        if fast then st.now = BASE else st.now = NOW() end
        local i = st.h
        if i < st.t and st.o and live(st, offset(st, st.o)) then
            st.i = i -- the oldest entry is live: nothing to drop, nothing read
            log_clamp(st)
            return st
        end
        st.o = nil
        while i < st.t do
            local off, n = log_ent(st, i)
            if live(st, off) then break end
            st.u = st.u - n
            i = i + 1
        end
        st.i = i
        log_clamp(st)
        return st
    end

    -- Offset of the newest live entry (nil if none); `pend` units admitted
    -- in this script call count as an entry at now.
    local function log_newest(st, pend)
        local newest
        if st.i < st.t then
            if st.z then
                if st.zoff == nil then st.zoff = offset(st, st.z) end
                newest = st.zoff
            else
                newest = log_ent(st, st.t - 1)
            end
        end
        if pend and (newest == nil or cmp(st.now, newest) > 0) then newest = st.now end
        return newest
    end

    -- Walk live entries oldest first: when have `need` units expired?
    local function log_walk(st, need)
        local now, W = st.now, st.W
        local acc = 0
        local pend_done = st.pend == 0
        for j = st.i, st.t - 1 do
            local off, c = log_ent(st, j)
            if not pend_done and cmp(off, now) > 0 then
                pend_done = true
                acc = acc + st.pend
                if acc >= need then return W end
            end
            acc = acc + c
            if acc >= need then return sub(add(off, W), now) end
        end
        if not pend_done and acc + st.pend >= need then return W end
        return 0
    end

    local function log_decide(P, st, n)
        local used = st.u + st.pend
        if used + n <= P.B then
            local nst = { key = st.key, h = st.h, t = st.t, u = st.u, i = st.i, ents = st.ents,
                          pend = st.pend + n, W = st.W, fast = st.fast, now = st.now,
                          o = st.o, z = st.z, zoff = st.zoff, moved = st.moved }
            local reset = sub(add(log_newest(st, true), st.W), st.now)
            return true, nst, P.B - used - n, 0, reset, 0
        end
        local reset = 0
        local newest = log_newest(st, st.pend > 0)
        if newest then reset = sub(add(newest, st.W), st.now) end
        return false, st, P.B - used, log_walk(st, used + n - P.B), reset, 0
    end

    local function log_held(P, st)
        local newest = log_newest(st, st.pend > 0)
        if newest then return sub(add(newest, st.W), st.now) end
        return 0
    end

    local function log_store(P, key, st, expire)
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
        if st.moved then -- entries a clock excursion left far ahead (log_clamp)
            for _, k in ipairs(st.moved) do
                local e = st.ents[k]
                redis.call('HSET', key, idx(k), e[3] .. ' ' .. idx(e[2]))
            end
        end
        local now_text = now_plus(0)
        local entry = now_text .. ' ' .. idx(st.pend)
        local h, t = st.i, st.t
        local newest = st.now
        local oldest, newest_text = now_text, now_text
        if h == t then -- nothing live: start numbering again
            h, t = 0, 0
            redis.call('HSET', key, '0', entry, 'h', '0', 't', '1', 'u', idx(st.pend),
                       'o', now_text, 'z', now_text)
        else
            oldest = st.o or select(3, log_ent(st, h))
            local last = log_newest(st, false)
            if cmp(last, st.now) <= 0 then
                redis.call('HSET', key, idx(t), entry, 'h', idx(h), 't', idx(t + 1),
                           'u', idx(st.u + st.pend), 'o', oldest, 'z', now_text)
            else -- the clock stepped back: insert in time order
                newest = last
                newest_text = st.z or select(3, log_ent(st, t - 1))
                local args = {}
                local j = t - 1
                while j >= h do
                    local off, en, text = log_ent(st, j)
                    if cmp(off, st.now) <= 0 then break end
                    args[#args + 1] = idx(j + 1)
                    args[#args + 1] = text .. ' ' .. idx(en)
                    j = j - 1
                end
                args[#args + 1] = idx(j + 1)
                args[#args + 1] = entry
                if j + 1 == h then oldest = now_text end
                redis.call('HSET', key, unpack(args))
                redis.call('HSET', key, 'h', idx(h), 't', idx(t + 1), 'u', idx(st.u + st.pend),
                           'o', oldest, 'z', newest_text)
            end
        end
        if expire then
            redis.call('PEXPIRE', key, ttl_ms(sub(add(newest, st.W), st.now)))
        end
    end

    -- A check that denies writes back what log_clamp moved: the entries,
    -- the newest time, the oldest when it moved (and entry h is the oldest
    -- live one), and the expiry.
    local function log_repair(P, key, st, expire)
        local args = { 'z', st.z }
        if st.i == st.h and st.o then
            args[#args + 1], args[#args + 2] = 'o', st.o
        end
        for _, k in ipairs(st.moved) do
            local e = st.ents[k]
            args[#args + 1], args[#args + 2] = idx(k), e[3] .. ' ' .. idx(e[2])
        end
        redis.call('HSET', key, unpack(args))
        if expire then
            redis.call('PEXPIRE', key, ttl_ms(sub(add(st.zoff, st.W), st.now)))
        end
    end

    return { load = log_load, decide = log_decide, held = log_held, store = log_store,
             repair = log_repair }
end
