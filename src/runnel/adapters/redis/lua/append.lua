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
-- victims unsafe for some group to the lost counter. Then every new entry is added (with
-- XADD MAXLEN = maxlen where the stream trims), and its idempotency key set to its id for
-- the window.

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

-- Parse the entries into flat arrays (no table per entry: a batch may hold thousands);
-- resolve idempotency keys; count the new entries per stream.
local streams, froms, tos, dedups, repeats = {}, {}, {}, {}, {}
local added = {}
local known = {}  -- idempotency key index -> id already recorded, or the entry adding it
local n = 0
local i = 6
local last = #ARGV
while i <= last do
    local k = tonumber(ARGV[i])
    local d = tonumber(ARGV[i + 1])
    local width = 2 * tonumber(ARGV[i + 2])
    n = n + 1
    streams[n], froms[n], tos[n], dedups[n], repeats[n] = k, i + 3, i + 2 + width, d, false
    if d > 0 then
        if known[d] == nil then
            known[d] = redis.call('GET', KEYS[d]) or false
        end
        if known[d] then
            repeats[n] = known[d]  -- a repeat: an id, or the number of the entry adding it
        else
            known[d] = n
        end
    end
    if not repeats[n] then
        added[k] = (added[k] or 0) + 1
    end
    i = i + 3 + width
end

-- First pass: read only. A stream trims only if its new entries take it past maxlen;
-- the others are added without MAXLEN (exact trimming would remove nothing from them).
local lost = 0
local trims = {}
for k = 1, nstreams do
    local more = added[k] or 0
    local refusal, count, length = cap_check(KEYS[k], more, maxlen, mode)
    if refusal then
        return redis.error_reply(refusal)
    end
    lost = lost + count
    trims[k] = capped and length + more > maxlen
end

if mode == 'lossy' and lost > 0 then
    redis.call('INCRBY', KEYS[lost_index], lost)
end

local ids = {}
for e = 1, n do
    local repeat_of = repeats[e]
    if not repeat_of then
        local k = streams[e]
        local id
        if trims[k] then
            id = redis.call('XADD', KEYS[k], 'MAXLEN', '=', ARGV[1], '*', unpack(ARGV, froms[e], tos[e]))
        else
            id = redis.call('XADD', KEYS[k], '*', unpack(ARGV, froms[e], tos[e]))
        end
        ids[e] = id
        local d = dedups[e]
        if d > 0 then
            redis.call('SET', KEYS[d], id, 'PX', window)
        end
    elseif type(repeat_of) == 'number' then
        ids[e] = ids[repeat_of]  -- added earlier in this batch
    else
        ids[e] = repeat_of
    end
end
return ids
