-- Claim idle pending entries (XAUTOCLAIM) and report each claimed entry's delivery count.
--
-- KEYS: stream
-- ARGV: group, consumer, min-idle-ms, start, count
-- Returns {next start, entries, deleted ids, delivery counts (one per entry)}. Redis 7
-- lists the ids of pending entries whose stream entry was deleted as the third element
-- of XAUTOCLAIM's reply and removes them from the pending entries list.

local group, consumer = ARGV[1], ARGV[2]
local reply = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, ARGV[3], ARGV[4],
    'COUNT', ARGV[5])
local entries = reply[2]
local counts = {}
for i = 1, #entries do
    local id = entries[i][1]
    local info = redis.call('XPENDING', KEYS[1], group, id, id, 1)[1]
    counts[i] = info and info[4] or 1
end
return {reply[1], entries, reply[3] or {}, counts}
