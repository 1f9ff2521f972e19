-- Compare-and-set a membership record on its version, and announce the change.
--
-- KEYS: membership value, version counter, control stream
-- ARGV: expected version, new value, control stream cap (approximate), then the
--       announcement's field/value pairs
-- Returns {1, new version, control entry id} after writing the value, bumping the version
-- and appending the announcement (with a "version" field) in one step; {0, current
-- version} when the version is not the expected one (then nothing is written).

local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[1]) then
    return {0, current}
end
local version = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
local fields = {}
for i = 4, #ARGV do
    fields[#fields + 1] = ARGV[i]
end
fields[#fields + 1] = 'version'
fields[#fields + 1] = tostring(version)
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
return {1, version, id}
