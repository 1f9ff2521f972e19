-- Read or trim the outbox of an effectively-once partition, fenced by the partition's
-- lease (the outbox, the lock and the refusal counter share the partition's slot).
--
-- KEYS: 1 the outbox stream, 2 the partition's lease lock, 3 the fenced counter.
-- ARGV: token, then "read" and the most entries to return, or "drop" and the ids of the
--       entries relayed.
-- "read" returns the oldest entries of the outbox (as XRANGE does); "drop" deletes the
-- ids given and returns how many entries the outbox still holds.
-- Refuses with "FENCED <lock>" (the fenced counter counted) when the lock no longer holds
-- the token: a stale owner neither relays nor deletes anything.

if redis.call('GET', KEYS[2]) ~= ARGV[1] then
    redis.call('INCR', KEYS[3])
    return redis.error_reply('FENCED ' .. KEYS[2])
end
if ARGV[2] == 'read' then
    return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[3])
end
-- unpack() stops near 8,000 values: long lists go in chunks of 1000 ids.
for c = 3, #ARGV, 1000 do
    redis.call('XDEL', KEYS[1], unpack(ARGV, c, math.min(c + 999, #ARGV)))
end
return redis.call('XLEN', KEYS[1])
