-- Announce something on a membership's control stream, stamped with the current version.
--
-- KEYS: version counter, control stream
-- ARGV: control stream cap (approximate), then the announcement's field/value pairs
-- Returns the id of the new control entry.

local version = redis.call('GET', KEYS[1]) or '0'
local fields = {}
for i = 2, #ARGV do
    fields[#fields + 1] = ARGV[i]
end
fields[#fields + 1] = 'version'
fields[#fields + 1] = version
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
