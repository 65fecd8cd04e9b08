-- common.lua - what every algorithm shares: the current time, the table
-- of algorithms, and how a state string is written back with its expiry.
-- Invariant: a key is written only with an expiry no earlier than the
-- moment its state becomes indistinguishable from a fresh key.

-- The time of this call, set by the entry point: NOW_HI * 10^9 + NOW_LO
-- (Redis TIME gives it in that shape: seconds, and microseconds * 1000),
-- and as one exact value when an algorithm needs it (NOW()).
local NOW_HI, NOW_LO, NOW_BIG = 0, 0, nil
-- NOW_HI as the text it was read from, when there is one (else nil)
local NOW_HI_TEXT = nil
local E9 = 1000000000
local SMALL = 4503599627370496 -- 2^52

local function NOW()
    if NOW_BIG == nil then NOW_BIG = add(mul(NOW_HI, E9), NOW_LO) end
    return NOW_BIG
end

-- `now + d` as decimal text, for 0 <= d < 2^52.
local function now_plus(d)
    local lo = NOW_LO + d
    local r = fmod(lo, E9)
    local hi = NOW_HI + (lo - r) / E9
    -- %d, not %.0f: integer formatting is the cheaper (hi and r are whole
    -- and far below 2^63)
    if hi > 0 then return string.format('%d%09d', hi, r) end
    return string.format('%d', r)
end

-- `now + d` as decimal text, for any d >= 0.
local function now_plus_any(d)
    if type(d) ~= 'table' and d < SMALL then return now_plus(d) end
    return tostr(add(NOW(), d))
end

-- `t - now` for a time written as decimal text, when it is exact and
-- below about 2^52 in magnitude; else nil, and whether t is after now.
local function minus_now(text)
    local n = #text
    local hi, lo = 0, nil
    if n > 9 then
        local h = text:sub(1, n - 9)
        if h == NOW_HI_TEXT then hi = NOW_HI else hi = tonumber(h) end -- same second
        lo = tonumber(text:sub(n - 8))
    else
        lo = tonumber(text)
    end
    if hi == nil or lo == nil then error('floodwall: damaged state: ' .. text) end
    local dh = hi - NOW_HI
    if dh >= 4500000 or dh <= -4500000 then return nil, dh > 0 end
    return dh * E9 + (lo - NOW_LO)
end

-- max(h, 1 s): how far past its horizon h a stored state may lie ahead of
-- now before it counts as a clock excursion (the clock jumped ahead,
-- requests were decided, and it came back) and is clamped, as the C
-- engine does (docs/algorithms.md, "States the engine does not trust").
local function slack(h)
    if cmp(h, E9) > 0 then return h end
    return E9
end

-- W - (now mod W): what is left of now's window [k*W, (k+1)*W), on plain
-- numbers for whole seconds (now = NOW_HI * 10^9 + NOW_LO).
local function window_left(W)
    if type(W) ~= 'table' and W < SMALL and fmod(W, E9) == 0 then
        return W - (fmod(NOW_HI, W / E9) * E9 + NOW_LO)
    end
    local _, r = divmod(NOW(), W)
    return sub(W, r)
end

-- The end E (decimal text) of a stored window, unless that window starts
-- more than max(W, 1 s) after now (E - now > W + max(W, 1 s)): then the
-- end of now's window, so its counts are kept in now's window, and true.
local function window_end(W, e)
    local d, ahead = minus_now(e)
    if d ~= nil then
        if d <= 0 or (type(W) ~= 'table' and d <= W) then return e, false end
        if cmp(d, add(W, slack(W))) <= 0 then return e, false end
    elseif not ahead or cmp(sub(parse(e), NOW()), add(W, slack(W))) <= 0 then
        return e, false
    end
    return now_plus_any(window_left(W)), true
end

-- code -> a function building { load, decide, held, store }: only the
-- algorithms a call uses get their functions built.
local MAKE = {}
local NS_PER_MS = 1000000
local TTL_MAX_MS = 10000000000000 -- ~317 years; below 10^14
local TTL_MAX_TEXT = '10000000000000'

-- Milliseconds for a positive ns duration: at least its ceiling (one
-- millisecond late at worst, never early), capped; as decimal text (Redis
-- would format a Lua number with %.17g, the costlier way).
local function ttl_ms(ns)
    if type(ns) == 'table' then return TTL_MAX_TEXT end -- >= 2^53 ns: 104 days
    local ms = floor(ns / NS_PER_MS) + 1
    if ms > TTL_MAX_MS then return TTL_MAX_TEXT end
    return string.format('%d', ms)
end

-- Write a string state; `ttl_ns` is when it turns fresh, from now.
local function put(key, text, ttl_ns, expire)
    if expire then
        redis.call('SET', key, text, 'PX', ttl_ms(ttl_ns))
    else
        redis.call('SET', key, text)
    end
end

-- Split "a b c" state text into values.
local function fields(text, count)
    local out = {}
    for w in text:gmatch('%d+') do out[#out + 1] = parse(w) end
    if #out ~= count then error('floodwall: damaged state: ' .. text) end
    return out
end
