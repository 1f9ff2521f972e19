-- Append a batch of entries to one or more streams, atomically and in order, skipping
-- the entries whose idempotency key was already used within the window.
--
--!include _cap
--
-- KEYS: the distinct stream keys, then (only when routed) each stream's routing record
--       (same order), then (only when capped) the lost-entries counter, then the distinct
--       idempotency keys of the batch.
-- ARGV: maxlen, mode ("none" | "lossless" | "lossy"), the number of stream keys, the
--       idempotency window in milliseconds, the partition count the entries were routed
--       with (0: not checked), then for each entry: the 1-based index of its stream in
--       KEYS, the index in KEYS of its idempotency key (0 for none), its number of fields
--       n, then n field/value pairs (2n values).
-- A stream whose routing record holds another count (the stream grew since the sender
-- routed) refuses the batch before anything is written: RESIZED <stream> <count>.
-- Returns the ids in input order. An entry whose idempotency key is found (written by an
-- earlier append within the window, or by an earlier entry of this batch) is not added:
-- its id is the one the key remembers.
--
-- The cap rule (cap_check) looks only at the entries that will really be added; any
-- refusal refuses the whole batch before anything is written. A lossy cap adds the
-- victims unsafe for some group to the lost counter. Then every new entry is added with
-- XADD MAXLEN = maxlen, and its idempotency key set to its id for the window.

local maxlen = tonumber(ARGV[1])
local mode = ARGV[2]
local nstreams = tonumber(ARGV[3])
local window = ARGV[4]
local capped = mode ~= 'none'
local routed = tonumber(ARGV[5])
local lost_index = nstreams + 1

if routed > 0 then
    for k = 1, nstreams do
        local count = redis.call('HGET', KEYS[nstreams + k], 'count')
        if count and tonumber(count) ~= routed then
            return redis.error_reply('RESIZED ' .. KEYS[k] .. ' ' .. count)
        end
    end
    lost_index = 2 * nstreams + 1
end

-- Parse the entries; resolve idempotency keys; count the new entries per stream.
local entries = {}
local added = {}
local known = {}  -- idempotency key index -> id already recorded, or the entry adding it
local i = 6
while i <= #ARGV do
    local k = tonumber(ARGV[i])
    local d = tonumber(ARGV[i + 1])
    local width = 2 * tonumber(ARGV[i + 2])
    local entry = {k, i + 3, i + 2 + width, d, nil}
    if d > 0 then
        if known[d] == nil then
            known[d] = redis.call('GET', KEYS[d]) or false
        end
        if known[d] then
            entry[5] = known[d]  -- a repeat: an id, or the earlier entry of this batch
        else
            known[d] = entry
        end
    end
    if entry[5] == nil then
        added[k] = (added[k] or 0) + 1
    end
    entries[#entries + 1] = entry
    i = i + 3 + width
end

-- First pass: read only.
local lost = 0
for k = 1, nstreams do
    local refusal, count = cap_check(KEYS[k], added[k] or 0, maxlen, mode)
    if refusal then
        return redis.error_reply(refusal)
    end
    lost = lost + count
end

if mode == 'lossy' and lost > 0 then
    redis.call('INCRBY', KEYS[lost_index], lost)
end

local ids = {}
for e = 1, #entries do
    local entry = entries[e]
    local k, from, to, d, repeat_of = entry[1], entry[2], entry[3], entry[4], entry[5]
    if repeat_of == nil then
        if capped then
            ids[e] = redis.call('XADD', KEYS[k], 'MAXLEN', '=', ARGV[1], '*', unpack(ARGV, from, to))
        else
            ids[e] = redis.call('XADD', KEYS[k], '*', unpack(ARGV, from, to))
        end
        entry[6] = ids[e]
        if d > 0 then
            redis.call('SET', KEYS[d], ids[e], 'PX', window)
        end
    elseif type(repeat_of) == 'table' then
        ids[e] = repeat_of[6]
    else
        ids[e] = repeat_of
    end
end
return ids
