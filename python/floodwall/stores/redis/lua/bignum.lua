-- bignum.lua - exact non-negative integers for the floodwall Redis scripts.
--
-- Redis runs Lua 5.1, whose numbers are doubles: exact only below 2^53,
-- while times in nanoseconds reach 2^63 and some products reach 2^96. A
-- value below 2^53 is kept as a plain Lua number (the common case:
-- differences of times, counts, intervals); a larger one is an array of
-- base-10^7 limbs, least significant first, top limb non-zero, so that
-- decimal text converts both ways by slicing and formatting.
-- Invariant: every function below takes and returns values in that
-- canonical form, and every result is exact (no rounding, ever).

local LB = 10000000            -- limb base 10^7: limb products stay < 2^47
local TWO53 = 9007199254740992 -- 2^53
local SHORT = 900719925        -- short division for divisors below 2^53 / LB
-- math.floor and math.fmod, set by the entry point on each call: a Redis
-- function library cannot read `math` while it is being loaded.
local floor, fmod

-- Limbs of a value: a fresh array for a number (below 2^53), the array
-- itself for a table (which callers never modify).
local function limbs(x)
    if type(x) == 'table' then return x end
    local t, i = {}, 0
    while x > 0 do
        local r = fmod(x, LB) -- fmod is exact on doubles
        i = i + 1
        t[i] = r
        x = (x - r) / LB -- exact: an integer below 2^53
    end
    return t
end

-- Canonical form of a limb array (modified in place).
local function norm(t)
    local n = #t
    while n > 0 and t[n] == 0 do
        t[n] = nil
        n = n - 1
    end
    if n <= 2 then return (t[1] or 0) + (t[2] or 0) * LB end
    if n == 3 and t[3] <= 90 then
        local v = t[1] + t[2] * LB + t[3] * 100000000000000
        if v < TWO53 then return v end -- exact whenever it is below 2^53
    end
    return t
end

-- Some integer near the float x (exact below 2^53): division estimates.
local function approx(x)
    if x < TWO53 then return x end
    local t, i = {}, 0
    while x > 0 do
        local r = floor(fmod(x, LB))
        i = i + 1
        t[i] = r
        x = floor((x - r) / LB)
    end
    return norm(t)
end

-- An approximation, for estimates only.
local function tofloat(a)
    if type(a) ~= 'table' then return a end
    local f = 0
    for i = #a, 1, -1 do f = f * LB + a[i] end
    return f
end

local function cmp(a, b)
    local ta, tb = type(a) == 'table', type(b) == 'table'
    if not ta then
        if tb then return -1 end
        if a < b then return -1 elseif a > b then return 1 end
        return 0
    end
    if not tb then return 1 end
    local na, nb = #a, #b
    if na ~= nb then return na < nb and -1 or 1 end
    for i = na, 1, -1 do
        local x, y = a[i], b[i]
        if x ~= y then return x < y and -1 or 1 end
    end
    return 0
end

local function add(a, b)
    if type(a) ~= 'table' and type(b) ~= 'table' then
        local s = a + b -- exact whenever the true sum is below 2^53
        if s < TWO53 then return s end
    end
    local x, y = limbs(a), limbs(b)
    local r, c = {}, 0
    local n = #x
    if #y > n then n = #y end
    for i = 1, n do
        local s = (x[i] or 0) + (y[i] or 0) + c
        if s >= LB then
            r[i] = s - LB
            c = 1
        else
            r[i] = s
            c = 0
        end
    end
    if c > 0 then r[n + 1] = c end
    return norm(r)
end

-- a - b, for a >= b.
local function sub(a, b)
    if type(a) ~= 'table' then
        if type(b) == 'table' or b > a then error('floodwall: internal: negative difference') end
        return a - b
    end
    local y = limbs(b)
    local r, c = {}, 0
    for i = 1, #a do
        local s = a[i] - (y[i] or 0) - c
        if s < 0 then
            r[i] = s + LB
            c = 1
        else
            r[i] = s
            c = 0
        end
    end
    if c ~= 0 or #y > #a then error('floodwall: internal: negative difference') end
    return norm(r)
end

local function mul(a, b)
    if type(a) ~= 'table' and type(b) ~= 'table' then
        local p = a * b -- exact whenever the true product is below 2^53
        if p < TWO53 then return p end
    end
    local x, y = limbs(a), limbs(b)
    local nx, ny = #x, #y
    if nx == 0 or ny == 0 then return 0 end
    local r = {}
    for i = 1, nx + ny do r[i] = 0 end
    for i = 1, nx do
        local xi = x[i]
        if xi ~= 0 then
            local c = 0
            for j = 1, ny do
                local k = i + j - 1
                local s = r[k] + xi * y[j] + c -- < 2^47
                local lo = fmod(s, LB)
                c = (s - lo) / LB
                r[k] = lo
            end
            local k = i + ny
            while c > 0 do
                local s = r[k] + c
                local lo = fmod(s, LB)
                c = (s - lo) / LB
                r[k] = lo
                k = k + 1
            end
        end
    end
    return norm(r)
end

-- Floor division and remainder, b > 0.
local function divmod(a, b)
    if type(b) ~= 'table' then
        if not (b > 0) then error('floodwall: internal: division by zero') end
        if type(a) ~= 'table' then
            local r = fmod(a, b) -- exact on doubles
            return (a - r) / b, r
        end
        if b < SHORT then -- one limb at a time, partials below 2^53
            local q, r = {}, 0
            for i = #a, 1, -1 do
                local cur = r * LB + a[i]
                r = fmod(cur, b)
                q[i] = (cur - r) / b
            end
            return norm(q), r
        end
    end
    if cmp(a, b) < 0 then return 0, a end
    -- Estimate in floating point, then correct with exact products: each
    -- round shrinks the error by about 2^50, so a few rounds suffice.
    local bf = tofloat(b)
    local q = approx(floor(tofloat(a) / bf))
    for _ = 1, 32 do
        local p = mul(q, b)
        if cmp(p, a) > 0 then
            local k = approx(floor(tofloat(sub(p, a)) / bf))
            if cmp(k, 1) < 0 then k = 1 end
            if cmp(k, q) >= 0 then q = 0 else q = sub(q, k) end
        else
            local r = sub(a, p)
            if cmp(r, b) < 0 then return q, r end
            local k = approx(floor(tofloat(r) / bf))
            if cmp(k, 1) < 0 then k = 1 end
            q = add(q, k)
        end
    end
    error('floodwall: internal: division did not converge')
end

local function div(a, b)
    local q = divmod(a, b)
    return q
end

-- Decimal text (digits only: the scripts' own arguments and state) to a
-- value; anything else is an error.
local function parse(s)
    local n = #s
    if n <= 15 then
        local v = tonumber(s)
        if v == nil or v < 0 or v % 1 ~= 0 then error('floodwall: not a decimal integer: ' .. s) end
        return v
    end
    local t, i = {}, 0
    for e = n, 1, -7 do
        local b = e - 6
        if b < 1 then b = 1 end
        local v = tonumber(s:sub(b, e))
        if v == nil or v < 0 or v % 1 ~= 0 then error('floodwall: not a decimal integer: ' .. s) end
        i = i + 1
        t[i] = v
    end
    return norm(t)
end

-- The scripts' own decimal arguments (trusted digits), without checks.
local function num(s)
    if #s <= 15 then return tonumber(s) end
    return parse(s)
end

-- A value as decimal text.
local function tostr(v)
    if type(v) ~= 'table' then return string.format('%.0f', v) end
    local n = #v
    if n == 3 then return string.format('%.0f%07d%07d', v[3], v[2], v[1]) end
    local out = { string.format('%.0f', v[n]) }
    for i = n - 1, 1, -1 do out[#out + 1] = string.format('%07d', v[i]) end
    return table.concat(out)
end

-- A value as a Redis reply: an integer when exact, else decimal text.
local function reply(v)
    if type(v) == 'table' then return tostr(v) end
    return v
end

local function max(a, b)
    if cmp(a, b) >= 0 then return a end
    return b
end
