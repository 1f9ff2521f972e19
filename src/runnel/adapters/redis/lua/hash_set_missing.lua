-- Set the hash fields that are missing, then return the whole hash.
--
-- KEYS: hash
-- ARGV: field, value, ...
-- Returns HGETALL's flat field/value list.

for i = 1, #ARGV, 2 do
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
return redis.call('HGETALL', KEYS[1])
