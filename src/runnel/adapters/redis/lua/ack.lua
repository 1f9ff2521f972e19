-- Acknowledge ids of one partition for a group, optionally fenced.
--
-- KEYS: stream [, lock, fenced-counter]
-- ARGV: group, token (ignored without a fence), id...
-- Returns the number of ids acknowledged, or the error "FENCED <lock>" (after
-- incrementing the fenced counter) when the lock no longer holds the token.

if #KEYS > 1 and redis.call('GET', KEYS[2]) ~= ARGV[2] then
    redis.call('INCR', KEYS[3])
    return redis.error_reply('FENCED ' .. KEYS[2])
end
if #ARGV < 3 then
    return 0
end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
