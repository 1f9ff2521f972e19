-- Acknowledge ids of several partitions in one call, each optionally fenced.
--
-- KEYS: per partition: stream, lock, fenced counter
-- ARGV: per partition: group, token ("" for an unfenced ack), number of ids, then the ids
-- Returns one slot per partition: {1, acknowledged}, {0} when fenced (counted), or
-- {-1, message} when Redis refused the XACK.

local out = {}
local a = 1
for i = 0, #KEYS / 3 - 1 do
    local stream, lock, counter = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
    local group, token, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
    local first, last = a + 3, a + 2 + n
    a = last + 1
    if token ~= '' and redis.call('GET', lock) ~= token then
        redis.call('INCR', counter)
        out[i + 1] = {0}
    elseif n == 0 then
        out[i + 1] = {1, 0}
    else
        local acked = 0
        -- unpack() has a stack limit: acknowledge in chunks.
        for from = first, last, 1000 do
            local to = math.min(from + 999, last)
            local reply = redis.pcall('XACK', stream, group, unpack(ARGV, from, to))
            if type(reply) == 'table' and reply.err then
                acked = reply
                break
            end
            acked = acked + reply
        end
        if type(acked) == 'table' then
            out[i + 1] = {-1, acked.err}
        else
            out[i + 1] = {1, acked}
        end
    end
end
return out
