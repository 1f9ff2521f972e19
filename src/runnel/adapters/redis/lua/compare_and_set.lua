-- Set a string only if it holds the expected value.
--
-- KEYS: key
-- ARGV: "1" if an expected value is given ("0": the key must be missing), expected, value
-- Returns 1 if the value was set, else 0.

local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
    if current ~= ARGV[2] then
        return 0
    end
elseif current then
    return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
