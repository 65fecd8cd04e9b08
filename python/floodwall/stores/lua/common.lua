-- common.lua - what every algorithm script shares: the table of
-- algorithms and how a state string is written back with its expiry.
-- Invariant: a key is written only with an expiry no earlier than the
-- moment its state becomes indistinguishable from a fresh key.

-- code -> a function building { load, decide, held, store }: only the
-- algorithms a call uses get their functions built.
local MAKE = {}
local NS_PER_MS = 1000000
local TTL_MAX_MS = 10000000000000 -- ~317 years; below 10^14, so a Lua
                                  -- number is passed to Redis exactly

-- Milliseconds for a positive ns duration: at least its ceiling (one
-- millisecond late at worst, never early), capped.
local function ttl_ms(ns)
    if type(ns) == 'table' then return TTL_MAX_MS end -- >= 2^53 ns: 104 days
    local ms = floor(ns / NS_PER_MS) + 1
    if ms > TTL_MAX_MS then return TTL_MAX_MS end
    return ms
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
