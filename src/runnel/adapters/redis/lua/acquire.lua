-- Take a lock with a new fencing epoch, if nobody holds it.
--
-- KEYS: lock, epoch counter
-- ARGV: owner, ttl in ms
-- Returns the new epoch, or nil when the lock is held. The lock's value becomes
-- "<owner>:<epoch>". A missing epoch counter (first use, or a store reset) is seeded from
-- the server clock in ms, so epochs keep increasing across a reset without persistence.

if redis.call('EXISTS', KEYS[1]) == 1 then
    return false
end
if redis.call('EXISTS', KEYS[2]) == 0 then
    local now = redis.call('TIME')
    local ms = string.format('%03d', math.floor(tonumber(now[2]) / 1000))
    redis.call('SET', KEYS[2], now[1] .. ms)
end
local epoch = redis.call('INCR', KEYS[2])
-- '%d' keeps every digit (plain concatenation of a Lua number may use an exponent).
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. string.format('%d', epoch), 'PX', ARGV[2])
return epoch
