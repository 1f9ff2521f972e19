-- The length cap rule, shared by append.lua and commit.lua (placed ahead of their own
-- code where they say "--!include _cap"; no value is ever built into Lua source).
--
-- cap_check(key, n, maxlen, mode) works out, writing nothing, which entries exact trimming
-- of `key` to `maxlen` will remove once `n` new entries are added: the oldest existing
-- entries, and, when the stream gets more new entries than maxlen, the first new ones. A
-- victim is unsafe for a consumer group when the group has not acknowledged it: its id is
-- above the group's last-delivered-id (never delivered), or it is in the group's pending
-- entries list. It returns the refusal "BACKPRESSURE <key> <first unsafe id> <group>" in
-- lossless mode ("new" when the first unsafe victim is one of the new entries), else nil
-- and the number of victims unsafe for at least one group (what a lossy cap counts); the
-- third value is the stream's length before the new entries.
-- XLEN comes first, so a key of the wrong type is refused before anything is written.

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

local function cap_check(key, n, maxlen, mode)
    local length = redis.call('XLEN', key)
    if mode == 'none' or n == 0 or length + n <= maxlen or redis.call('EXISTS', key) == 0 then
        return nil, 0, length
    end
    local excess = length + n - maxlen
    local old = math.min(excess, length)
    local victims = {}
    if old > 0 then
        victims = redis.call('XRANGE', key, '-', '+', 'COUNT', old)
    end
    local unsafe = {}
    local groups = groups_of(key)
    if old > 0 then
        for _, g in ipairs(groups) do
            mark_unsafe(key, g[1], g[2], g[3], victims, unsafe)
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
        return 'BACKPRESSURE ' .. key .. ' ' .. id .. ' ' .. group, 0, length
    end
    return nil, count, length
end
