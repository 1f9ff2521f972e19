-- Renew the locks still held with their tokens. Never takes a lock that is gone.
--
-- KEYS: lock...
-- ARGV: ttl in ms, then one token per key
-- Returns one 1 (renewed) or 0 (lost) per key.

local out = {}
for i = 1, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
        out[i] = redis.call('PEXPIRE', KEYS[i], ARGV[1])
    else
        out[i] = 0
    end
end
return out
