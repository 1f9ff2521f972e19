-- Commit one iteration of an effectively-once processor: its outputs, its state changes
-- and the acknowledgement of its input entries, in one atomic step fenced by the lease.
--
--!include _cap
--
-- KEYS: 1 the source stream, 2 its lease lock, 3 the fenced counter, 4 the partition's
--       state hash, then the output stream keys and the lost counters of their caps.
-- ARGV: token, group, the number of ids to acknowledge, the ids; the number of state
--       fields to set, then field/value pairs; the number of state fields to delete, then
--       the fields; the number of output streams, then per output stream: the index of its
--       key in KEYS, maxlen, mode ("none" | "lossless" | "lossy"), the index in KEYS of its
--       lost counter; then per output entry: its output stream's number (1-based), its
--       number of fields n, then n field/value pairs.
-- Returns the output ids in input order; 0 when the first id to acknowledge is no longer
-- pending (this commit was applied already: a retry after a reply that never came).
-- Refuses with "FENCED <lock>" (the fenced counter counted) when the lock no longer holds
-- the token, and with "BACKPRESSURE ..." when an output's lossless cap has no room; a
-- refused commit writes nothing else.

local token, group = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[2]) ~= token then
    redis.call('INCR', KEYS[3])
    return redis.error_reply('FENCED ' .. KEYS[2])
end

local a = 3
local nids = tonumber(ARGV[a])
local ids_from, ids_to = a + 1, a + nids
a = a + nids + 1
if nids > 0 then
    local first = ARGV[ids_from]
    if #redis.call('XPENDING', KEYS[1], group, first, first, 1) == 0 then
        return 0
    end
end
local nset = tonumber(ARGV[a])
local set_from, set_to = a + 1, a + 2 * nset
a = a + 2 * nset + 1
local ndel = tonumber(ARGV[a])
local del_from, del_to = a + 1, a + ndel
a = a + ndel + 1

local nstreams = tonumber(ARGV[a])
local streams = {}
a = a + 1
for s = 1, nstreams do
    streams[s] = {tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])}
    a = a + 4
end

local entries = {}
local added = {}
while a <= #ARGV do
    local s = tonumber(ARGV[a])
    local width = 2 * tonumber(ARGV[a + 1])
    entries[#entries + 1] = {s, a + 2, a + 1 + width}
    added[s] = (added[s] or 0) + 1
    a = a + 2 + width
end

-- First pass: read only.
local lost = {}
for s = 1, nstreams do
    local stream = streams[s]
    local refusal, count = cap_check(KEYS[stream[1]], added[s] or 0, tonumber(stream[2]), stream[3])
    if refusal then
        return redis.error_reply(refusal)
    end
    lost[s] = count
end

for s = 1, nstreams do
    if streams[s][3] == 'lossy' and lost[s] > 0 then
        redis.call('INCRBY', KEYS[streams[s][4]], lost[s])
    end
end
local ids = {}
for e = 1, #entries do
    local stream = streams[entries[e][1]]
    local from, to = entries[e][2], entries[e][3]
    if stream[3] == 'none' then
        ids[e] = redis.call('XADD', KEYS[stream[1]], '*', unpack(ARGV, from, to))
    else
        ids[e] = redis.call('XADD', KEYS[stream[1]], 'MAXLEN', '=', stream[2], '*', unpack(ARGV, from, to))
    end
end
-- unpack() stops near 8,000 values: long lists go in chunks of 1000 values.
for c = set_from, set_to, 1000 do
    redis.call('HSET', KEYS[4], unpack(ARGV, c, math.min(c + 999, set_to)))
end
for c = del_from, del_to, 1000 do
    redis.call('HDEL', KEYS[4], unpack(ARGV, c, math.min(c + 999, del_to)))
end
for c = ids_from, ids_to, 1000 do
    redis.call('XACK', KEYS[1], group, unpack(ARGV, c, math.min(c + 999, ids_to)))
end
return ids
