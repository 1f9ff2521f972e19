-- Append a batch of entries to one or more streams, atomically and in order.
--
-- KEYS: the distinct stream keys, then (only when capped) the lost-entries counter.
-- ARGV: maxlen, mode ("none" | "lossless" | "lossy"), then for each entry:
--       the 1-based index of its stream in KEYS, its number of fields n, then n
--       field/value pairs (2n values).
-- Returns the new ids in input order.
--
-- With a cap, a first pass (which writes nothing) works out, for every stream, which
-- entries exact trimming to maxlen will remove: the oldest existing entries, and, when a
-- stream gets more new entries than maxlen, the first new ones. A victim is unsafe for a
-- consumer group when the group has not acknowledged it: its id is above the group's
-- last-delivered-id (never delivered), or it is in the group's pending entries list.
-- Lossless: any unsafe victim refuses the whole batch with the error
-- "BACKPRESSURE <key> <first unsafe id> <group>" ("new" when the first unsafe victim is one
-- of this batch's entries). Lossy: the number of victims unsafe for at least one group is
-- added to the lost counter. Then every entry is added with XADD MAXLEN = maxlen.

local mode = ARGV[2]
local capped = mode ~= 'none'
local maxlen = tonumber(ARGV[1])
local nstreams = #KEYS
if capped then
    nstreams = nstreams - 1
end

-- Stream ids are "<ms>-<seq>" with both parts decimal integers that may exceed what a
-- Lua number holds exactly, so compare them as digit strings (length first).
local function compare_digits(a, b)
    if #a ~= #b then
        return #a < #b and -1 or 1
    end
    if a == b then
        return 0
    end
    return a < b and -1 or 1
end

local function split_id(id)
    local dash = string.find(id, '-', 1, true)
    if not dash then
        return id, '0'
    end
    return string.sub(id, 1, dash - 1), string.sub(id, dash + 1)
end

local function compare_ids(a, b)
    local ams, aseq = split_id(a)
    local bms, bseq = split_id(b)
    local c = compare_digits(ams, bms)
    if c ~= 0 then
        return c
    end
    return compare_digits(aseq, bseq)
end

-- Parse the entries; count the new entries per stream.
local entries = {}
local added = {}
local i = 3
while i <= #ARGV do
    local k = tonumber(ARGV[i])
    local width = 2 * tonumber(ARGV[i + 1])
    entries[#entries + 1] = {k, i + 2, i + 1 + width}
    added[k] = (added[k] or 0) + 1
    i = i + 2 + width
end

-- The consumer groups of a stream: name, last-delivered-id and pending count.
local function groups_of(key)
    local out = {}
    for _, flat in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        local info = {}
        for j = 1, #flat, 2 do
            info[flat[j]] = flat[j + 1]
        end
        out[#out + 1] = {info['name'], info['last-delivered-id'], tonumber(info['pending'])}
    end
    return out
end

-- Which of the oldest existing entries (victims, in id order) a group has not acknowledged:
-- marks unsafe[j] with the group's name unless an earlier group already marked it.
local function mark_unsafe(key, group, delivered, pending, victims, unsafe)
    local in_pel = {}
    local last = victims[#victims][1]
    if compare_ids(last, delivered) > 0 then
        last = delivered
    end
    if pending > 0 and compare_ids(victims[1][1], last) <= 0 then
        -- One range query: the group's pending ids among the delivered victims.
        for _, row in ipairs(redis.call('XPENDING', key, group, victims[1][1], last, pending)) do
            in_pel[row[1]] = true
        end
    end
    for j = 1, #victims do
        local id = victims[j][1]
        if not unsafe[j] and (in_pel[id] or compare_ids(id, delivered) > 0) then
            unsafe[j] = group
        end
    end
end

-- First pass: read only. XLEN also refuses a key of the wrong type before anything is written.
local lost = 0
for k = 1, nstreams do
    local n = added[k] or 0
    local length = redis.call('XLEN', KEYS[k])
    if capped and n > 0 and length + n > maxlen and redis.call('EXISTS', KEYS[k]) == 1 then
        local excess = length + n - maxlen
        local old = math.min(excess, length)
        local victims = {}
        if old > 0 then
            victims = redis.call('XRANGE', KEYS[k], '-', '+', 'COUNT', old)
        end
        local unsafe = {}
        local groups = groups_of(KEYS[k])
        if old > 0 then
            for _, g in ipairs(groups) do
                mark_unsafe(KEYS[k], g[1], g[2], g[3], victims, unsafe)
            end
        end
        -- New entries trimmed within this batch were delivered to no group.
        local fresh = 0
        if #groups > 0 then
            fresh = excess - old
        end
        local first, count = nil, fresh
        for j = old, 1, -1 do
            if unsafe[j] then
                first, count = j, count + 1
            end
        end
        if mode == 'lossless' and (first or fresh > 0) then
            local id, group = 'new', groups[1] and groups[1][1]
            if first then
                id, group = victims[first][1], unsafe[first]
            end
            return redis.error_reply('BACKPRESSURE ' .. KEYS[k] .. ' ' .. id .. ' ' .. group)
        end
        lost = lost + count
    end
end

if mode == 'lossy' and lost > 0 then
    redis.call('INCRBY', KEYS[#KEYS], lost)
end

local ids = {}
for e = 1, #entries do
    local k, from, to = entries[e][1], entries[e][2], entries[e][3]
    if capped then
        ids[e] = redis.call('XADD', KEYS[k], 'MAXLEN', '=', ARGV[1], '*', unpack(ARGV, from, to))
    else
        ids[e] = redis.call('XADD', KEYS[k], '*', unpack(ARGV, from, to))
    end
end
return ids
