-- Group reads of several partitions in one call, each optionally fenced. Never blocks.
--
-- KEYS: per partition: stream, lock, fenced counter
-- ARGV: per partition: group, consumer, count, start, token ("" for an unfenced read)
-- Returns one slot per partition:
--   {1, entries}            new entries (start ">")
--   {1, entries, pending}   a history read; pending is XPENDING's extended reply for the
--                           returned ids, taken after the read, so each delivery count
--                           includes this delivery
--   {0}                     fenced: the lock no longer holds the token (counted)
--   {-1, message}           Redis refused the read (e.g. NOGROUP)
-- An entry trimmed after delivery comes back as {id, false}.

local out = {}
for i = 0, #KEYS / 3 - 1 do
    local stream, lock, counter = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
    local group, consumer = ARGV[5 * i + 1], ARGV[5 * i + 2]
    local count, start, token = ARGV[5 * i + 3], ARGV[5 * i + 4], ARGV[5 * i + 5]
    if token ~= '' and redis.call('GET', lock) ~= token then
        redis.call('INCR', counter)
        out[i + 1] = {0}
    else
        local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
            'STREAMS', stream, start)
        if type(reply) == 'table' and reply.err then
            out[i + 1] = {-1, reply.err}
        elseif not reply then
            out[i + 1] = {1, {}}
        else
            local entries = reply[1][2]
            if start == '>' or #entries == 0 then
                out[i + 1] = {1, entries}
            else
                out[i + 1] = {1, entries, redis.call('XPENDING', stream, group,
                    entries[1][1], entries[#entries][1], #entries, consumer)}
            end
        end
    end
end
return out
