-- Move one entry to a dead-letter stream: append its fields to the sink, then acknowledge
-- it on the source, atomically; optionally fenced.
--
-- KEYS: stream, sink [, lock, fenced-counter]
-- ARGV: group, id, token (ignored without a fence), field, value, ...
-- Returns the sink entry's id, or the error "FENCED <lock>" (after incrementing the
-- fenced counter, with nothing written or acknowledged).
-- XADD comes first: XACK cannot fail on a missing group (it answers 0), so the sink never
-- misses an entry that the source no longer has pending.

if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[3] then
    redis.call('INCR', KEYS[4])
    return redis.error_reply('FENCED ' .. KEYS[3])
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return id
