#!lua flags=no-writes
-- Dry-run the ACL of the commands runnel sends, without running any write.
--
-- In a script flagged no-writes, Redis checks a command's ACL (the command and its keys)
-- before it refuses the command for being a write: a write is checked but never runs.
-- Reads run, and change nothing. Keys travel in ARGV, not KEYS: a key the user may not
-- touch in KEYS would fail the whole call without saying which.
--
-- ARGV: per probe: the number of words n, then the n words (a command and its arguments)
-- Returns {probe number (from 1), error} for each probe the ACL refused.

local refused, i, probe = {}, 1, 0
while i <= #ARGV do
    local n = tonumber(ARGV[i])
    probe = probe + 1
    local reply = redis.pcall(unpack(ARGV, i + 1, i + n))
    if type(reply) == 'table' and reply.err then
        local err = reply.err
        if string.find(err, "can't run", 1, true) or string.find(err, "can't access", 1, true)
                or string.find(err, 'NOPERM', 1, true) or string.find(err, 'no permissions', 1, true) then
            refused[#refused + 1] = {probe, err}
        end
    end
    i = i + n + 1
end
return refused
