-- Record a partition's switch point for a resize, atomically with its new routing count.
--
-- KEYS: the partition's stream, its routing record (a hash, in the same slot).
-- ARGV: the partition count the stream grows to, the marker entry's field name.
-- Appends a marker entry (one field: the marker's name -> the new count) whose id is the
-- switch point, records that id in the routing record under the new count, and sets the
-- record's count. From then on append.lua refuses entries routed with another count, so
-- every entry before the marker was routed with the old count and every entry after it
-- with the new. Run again for the same count (a resize interrupted and repeated), it
-- changes nothing and returns the point recorded then.

local grown = ARGV[1]
if redis.call('HGET', KEYS[2], 'count') == grown then
    local recorded = redis.call('HGET', KEYS[2], grown)
    if recorded then
        return recorded
    end
end
local point = redis.call('XADD', KEYS[1], '*', ARGV[2], grown)
redis.call('HSET', KEYS[2], grown, point, 'count', grown)
return point
