-- Delete the locks still held with their tokens.
--
-- KEYS: lock...
-- ARGV: one token per key
-- Returns one 1 (released) or 0 (not held with that token) per key.

local out = {}
for i = 1, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[i] then
        out[i] = redis.call('DEL', KEYS[i])
    else
        out[i] = 0
    end
end
return out
