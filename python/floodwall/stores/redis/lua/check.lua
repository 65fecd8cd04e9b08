-- check.lua - the one entry point, check(KEYS, ARGV): decide a check of
-- `cost` units on every part (one Redis key per rate and user key),
-- all-or-nothing. Called by the EVAL script, or registered as a Redis
-- function (then ALGO below lives as long as the library).
--
-- KEYS: one per part. ARGV: now (decimal ns, or "" to read Redis TIME),
-- cost (one for every part, or one per part separated by commas: "1,1,10"),
-- "1" to set expiries (only meaningful with Redis TIME), then one per part,
-- its quota as "algo B T tau W" (algo: g gcra family, s leaky-bucket
-- shaping, f fixed window, w sliding window, l sliding log; the others
-- decimal integers).
-- Reply: one string, "allowed index remaining retry_after_ns
-- reset_after_ns delay_ns" (allowed 1 or 0, index of the deciding part
-- 0-based; every value exact decimal): one bulk reply is cheaper for Redis
-- to send and for a client to parse than an array of six.
-- Invariant: parts are decided in order, each seeing what the parts before
-- it admitted (a key may appear twice); state is written only when every
-- part is admitted, and only by parts of cost > 0, so a denial or a peek
-- consumes nothing. The one write a denial makes is a repair: a state a
-- clock excursion left far ahead (docs/algorithms.md), read clamped by its
-- algorithm's load, is written back clamped by a check of cost > 0.

local ALGO = {} -- code -> the algorithm's functions, built on first use

local function algo(code)
    local A = ALGO[code]
    if A == nil then
        local make = MAKE[code]
        if make == nil then return nil end
        A = make()
        ALGO[code] = A
    end
    return A
end

-- Parsed quotas, by their ARGV text. A Redis function keeps them between
-- calls (a script run by EVAL parses its quotas on each call); they are
-- never changed once made. Bounded: past PARTS_MAX the table starts over.
local PARTS, NPARTS, PARTS_MAX = {}, 0, 256

-- The quota of one part; nil and a message when the text is not one.
local function quota(text)
    local P = PARTS[text]
    if P ~= nil then return P end
    local code, b, t, tau, w = text:match('^(%a) (%d+) (%d+) (%d+) (%d+)$')
    if code == nil then return nil, 'floodwall: bad quota ' .. text end
    P = { B = num(b), T = num(t), tau = num(tau), W = num(w), shaping = code == 's' }
    if code == 's' then code = 'g' end
    local A = algo(code)
    if A == nil then return nil, 'floodwall: unknown algorithm ' .. code end
    P.A = A
    if NPARTS >= PARTS_MAX then PARTS, NPARTS = {}, 0 end
    PARTS[text] = P
    NPARTS = NPARTS + 1
    return P
end

-- Decide one part: allowed, next state, remaining, retry, reset, delay.
local function decide(A, P, st, cost)
    if cost == 0 then -- a peek: what one unit would get, the state as it is
        local ok, _, rem, retry, _, delay = A.decide(P, st, 1)
        if ok then rem = add(rem, 1) end
        return ok, st, rem, retry, A.held(P, st), delay
    end
    return A.decide(P, st, cost)
end

-- A value as exact decimal text (%d: plain numbers here are whole, < 2^53).
local function text(v)
    if type(v) == 'table' then return tostr(v) end
    return string.format('%d', v)
end

local function answer(ok, i, rem, retry, reset, delay)
    -- an admission by the first part without a delay, the common case: two
    -- numbers to format instead of six (a big value is a table, never 0)
    if ok and i == 0 and retry == 0 and delay == 0 and type(rem) ~= 'table'
        and type(reset) ~= 'table' then
        return string.format('1 0 %d 0 %d 0', rem, reset)
    end
    if type(rem) ~= 'table' and type(retry) ~= 'table' and type(reset) ~= 'table'
        and type(delay) ~= 'table' then
        return string.format('%d %d %d %d %d %d', ok and 1 or 0, i, rem, retry, reset, delay)
    end
    return string.format('%d %d %s %s %s %s', ok and 1 or 0, i, text(rem), text(retry),
                         text(reset), text(delay))
end

local function check(KEYS, ARGV)
    if fmod == nil then floor, fmod = math.floor, math.fmod end
    -- Redis < 5 replicates scripts verbatim unless told to replicate
    -- effects (TIME makes this non-deterministic); 7 has the version number
    if not redis.REDIS_VERSION_NUM and redis.replicate_commands then
        redis.replicate_commands()
    end

    NOW_BIG = nil
    local clock = ARGV[1]
    if clock == '' then -- seconds and microseconds, as decimal text
        local t = redis.call('TIME')
        NOW_HI_TEXT = t[1]
        NOW_HI, NOW_LO = tonumber(NOW_HI_TEXT), tonumber(t[2]) * 1000
    else -- a caller's clock (tests): decimal ns in [0, 2^63 - 1]
        local n = #clock
        if n == 0 or n > 19 or clock:find('%D') then
            return redis.error_reply('floodwall: bad time ' .. clock)
        end
        if n > 9 then
            NOW_HI_TEXT = clock:sub(1, n - 9)
            NOW_HI, NOW_LO = tonumber(NOW_HI_TEXT), tonumber(clock:sub(n - 8))
        else
            NOW_HI_TEXT = nil
            NOW_HI, NOW_LO = 0, tonumber(clock)
        end
    end
    local expire = ARGV[3] == '1'
    local nparts = #KEYS
    if #ARGV ~= 3 + nparts or nparts == 0 then
        return redis.error_reply('floodwall: expected one quota argument per key')
    end

    local cost, costs = nil, nil -- one cost for every part, or one per part
    if ARGV[2] == '1' then -- the common cost, without parsing it
        cost = 1
    elseif ARGV[2]:find(',', 1, true) then
        costs = {}
        for c in ARGV[2]:gmatch('[^,]+') do
            if c:find('%D') then return redis.error_reply('floodwall: bad cost ' .. c) end
            costs[#costs + 1] = num(c)
        end
        if #costs ~= nparts then
            return redis.error_reply('floodwall: expected one cost per key')
        end
    else
        cost = num(ARGV[2])
    end

    if nparts == 1 then -- the common case, without the bookkeeping below
        if costs then cost = costs[1] end
        local P = PARTS[ARGV[4]] -- quota(), its cache hit inlined
        if P == nil then
            local err
            P, err = quota(ARGV[4])
            if P == nil then return redis.error_reply(err) end
        end
        -- cost > capacity (one unit: a capacity of 0, the one below it)
        if (cost == 1 and P.B == 0) or (cost ~= 1 and cmp(cost, P.B) > 0) then
            return redis.error_reply('floodwall: cost exceeds the capacity')
        end
        local A = P.A
        local key = KEYS[1]
        if A.quick and cost ~= 0 then -- the algorithm's shortcut, when it has one
            local ok, rem, retry, reset, delay = A.quick(P, key, cost, expire)
            if ok ~= nil then return answer(ok, 0, rem, retry, reset, delay) end
        end
        local st = A.load(P, key)
        local ok, nst, rem, retry, reset, delay = decide(A, P, st, cost)
        if cost ~= 0 then
            if ok then
                A.store(P, key, nst, expire)
            elseif st and st.clamped then -- a repair, not a consumption
                A.repair(P, key, st, expire)
            end
        end
        return answer(ok, 0, rem, retry, reset, delay)
    end
    if not costs then
        costs = {}
        for i = 1, nparts do costs[i] = cost end
    end

    -- Parse every part first: nothing is read before all are valid.
    local parts = {}
    for i = 1, nparts do
        local P, err = quota(ARGV[3 + i])
        if P == nil then return redis.error_reply(err) end
        if cmp(costs[i], P.B) > 0 then
            return redis.error_reply('floodwall: cost exceeds the capacity')
        end
        parts[i] = P
    end

    local cache, written, order = {}, {}, {}
    local repairs = {} -- charged parts whose loaded state was clamped
    local all_ok = true
    local pick, pick_ok, pick_rem, pick_retry, pick_reset, pick_delay
    for i = 1, nparts do
        local P = parts[i]
        local A = P.A
        local key = KEYS[i]
        local st = cache[key]
        if st == nil then
            st = A.load(P, key)
            cache[key] = st
            if st and st.clamped and costs[i] ~= 0 then repairs[#repairs + 1] = i end
        end
        local ok, nst, rem, retry, reset, delay = decide(A, P, st, costs[i])
        if ok and costs[i] ~= 0 then
            cache[key] = nst
            if not written[key] then
                written[key] = P
                order[#order + 1] = key
            end
        end
        -- the deciding part: when denied, the longest wait; else the fewest left
        local better
        if pick == nil then
            better = true
        elseif ok ~= pick_ok then
            better = not ok
        elseif ok then
            better = cmp(rem, pick_rem) < 0
        else
            better = cmp(retry, pick_retry) > 0
        end
        if better then
            pick, pick_ok, pick_rem, pick_retry, pick_reset, pick_delay = i, ok, rem, retry, reset, delay
        end
        if not ok then all_ok = false end
    end

    if all_ok then
        for _, key in ipairs(order) do
            local P = written[key]
            P.A.store(P, key, cache[key], expire)
        end
    else
        for _, i in ipairs(repairs) do
            local P = parts[i]
            P.A.repair(P, KEYS[i], P.A.load(P, KEYS[i]), expire)
        end
    end
    return answer(pick_ok, pick - 1, pick_rem, pick_retry, pick_reset, pick_delay)
end
