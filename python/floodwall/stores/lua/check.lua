-- check.lua - the one entry point: decide a check of `cost` units on every
-- part (one Redis key per rate and user key), all-or-nothing.
--
-- KEYS: one per part. ARGV: now (decimal ns, or "" to read Redis TIME),
-- cost, "1" to set expiries (only meaningful with Redis TIME), then five
-- per part: algo, B, T, tau, W (algo: g gcra family, s leaky-bucket
-- shaping, f fixed window, w sliding window, l sliding log).
-- Reply: { allowed, index of the deciding part (0-based), remaining,
-- retry_after_ns, reset_after_ns, delay_ns }: integers, or decimal text
-- when a value is 2^53 or more.
-- Invariant: parts are decided in order, each seeing what the parts before
-- it admitted (a key may appear twice); state is written only when every
-- part is admitted and cost > 0, so a denial or a peek changes nothing.

-- Redis < 5 replicates scripts verbatim unless told to replicate effects
-- (TIME makes this script non-deterministic); 7 has the version number.
if not redis.REDIS_VERSION_NUM and redis.replicate_commands then redis.replicate_commands() end

local now
if ARGV[1] == '' then -- seconds and microseconds, as decimal text
    now = time_ns(redis.call('TIME'))
else
    now = parse(ARGV[1])
end
local cost = parse(ARGV[2])
local expire = ARGV[3] == '1'

local ALGO = {} -- code -> the algorithm's functions, built on first use
local cache, written, order = {}, {}, {}
local all_ok = true
local pick, pick_ok, pick_rem, pick_retry, pick_reset, pick_delay

for i = 1, #KEYS do
    local a = 4 + (i - 1) * 5
    local code = ARGV[a]
    if code == nil or ARGV[a + 4] == nil then return redis.error_reply('floodwall: bad part ' .. i) end
    local P = { B = parse(ARGV[a + 1]), T = parse(ARGV[a + 2]), tau = parse(ARGV[a + 3]),
                W = parse(ARGV[a + 4]), shaping = code == 's' }
    if code == 's' then code = 'g' end
    local A = ALGO[code]
    if A == nil then
        if MAKE[code] == nil then return redis.error_reply('floodwall: unknown algorithm ' .. code) end
        A = MAKE[code]()
        ALGO[code] = A
    end
    if cmp(cost, P.B) > 0 then return redis.error_reply('floodwall: cost exceeds the capacity') end
    local key = KEYS[i]
    local st = cache[key]
    if st == nil then st = A.load(P, key, now) end
    local ok, nst, rem, retry, reset, delay
    if cost == 0 then -- a peek: what one unit would get, the state as it is
        ok, nst, rem, retry, reset, delay = A.decide(P, st, now, 1)
        if ok then rem = add(rem, 1) end
        reset = A.held(P, st, now)
    else
        ok, nst, rem, retry, reset, delay = A.decide(P, st, now, cost)
        if ok then
            cache[key] = nst
            if not written[key] then
                written[key] = { P, A }
                order[#order + 1] = key
            end
        end
    end
    if cache[key] == nil then cache[key] = st end
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

if all_ok and cost ~= 0 then
    for _, key in ipairs(order) do
        local pa = written[key]
        pa[2].store(pa[1], key, cache[key], now, expire)
    end
end

return { pick_ok and 1 or 0, pick - 1, reply(pick_rem), reply(pick_retry), reply(pick_reset), reply(pick_delay) }
