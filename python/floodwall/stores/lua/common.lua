-- common.lua - what every algorithm script shares: the table of
-- algorithms and how a state string is written back with its expiry.
-- Invariant: a key is written only with an expiry no earlier than the
-- moment its state becomes indistinguishable from a fresh key.

-- code -> a function building { load, decide, held, store }: only the
-- algorithms a call uses get their functions built.
local MAKE = {}
local NS_PER_MS = 1000000
local TTL_MAX_MS = 1000000000000000 -- ~31,700 years: below Redis's limit

-- Milliseconds (rounded up) for a positive ns duration, capped.
local function ttl_ms(ns)
    local ms = div(add(ns, NS_PER_MS - 1), NS_PER_MS)
    if cmp(ms, TTL_MAX_MS) > 0 then return TTL_MAX_MS end
    if cmp(ms, 1) < 0 then return 1 end
    return ms
end

-- Write a string state; `ttl_ns` is when it turns fresh, from now.
local function put(key, text, ttl_ns, expire)
    if expire then
        redis.call('SET', key, text, 'PX', tostr(ttl_ms(ttl_ns)))
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
