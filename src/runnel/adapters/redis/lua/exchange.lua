-- Acknowledge, then read, several partitions in one call; each slot fenced on its own.
--
-- KEYS: per ack slot: stream, lock, fenced counter; then the same per read slot
-- ARGV: the number of ack slots; per ack slot: group, token ("" when unfenced), the
--       number of ids, then the ids; per read slot: group, consumer, count, start, token
-- Returns {ack slots, read slots}:
--   an ack slot:  {1, acknowledged} | {0} fenced (counted) | {-1, message} refused
--   a read slot:  {1, entries} for new entries (start ">")
--                 {1, entries, pending} for a history read; pending is XPENDING's
--                   extended reply for the returned ids, taken after the read, so each
--                   delivery count includes this delivery
--                 {0} fenced (counted) | {-1, message} refused (e.g. NOGROUP)
-- Acknowledgements go first, so a history read never returns what was just acknowledged.
-- A read never blocks. An entry trimmed after delivery comes back as {id, false}.

local holders = {}  -- lock -> its value, read once per call (a partition acks and reads)

local function fenced(lock, counter, token)
    if token == '' then
        return false
    end
    local holder = holders[lock]
    if holder == nil then
        holder = redis.call('GET', lock)
        holders[lock] = holder
    end
    if holder ~= token then
        redis.call('INCR', counter)
        return true
    end
    return false
end

local acks, reads = {}, {}
local nacks = tonumber(ARGV[1])
local a = 2
for i = 0, nacks - 1 do
    local stream, lock, counter = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
    local group, token, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
    local first, last = a + 3, a + 2 + n
    a = last + 1
    if fenced(lock, counter, token) then
        acks[i + 1] = {0}
    else
        local acked, failure = 0, nil
        -- unpack() has a stack limit: acknowledge in chunks.
        for from = first, last, 1000 do
            local reply = redis.pcall('XACK', stream, group, unpack(ARGV, from, math.min(from + 999, last)))
            if type(reply) == 'table' and reply.err then
                failure = reply.err
                break
            end
            acked = acked + reply
        end
        if failure then
            acks[i + 1] = {-1, failure}
        else
            acks[i + 1] = {1, acked}
        end
    end
end
for i = nacks, #KEYS / 3 - 1 do
    local stream, lock, counter = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
    local group, consumer, count, start, token = ARGV[a], ARGV[a + 1], ARGV[a + 2],
        ARGV[a + 3], ARGV[a + 4]
    a = a + 5
    local slot
    if fenced(lock, counter, token) then
        slot = {0}
    else
        local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
            'STREAMS', stream, start)
        if type(reply) == 'table' and reply.err then
            slot = {-1, reply.err}
        elseif not reply then
            slot = {1, {}}
        else
            local entries = reply[1][2]
            if start == '>' or #entries == 0 then
                slot = {1, entries}
            else
                slot = {1, entries, redis.call('XPENDING', stream, group,
                    entries[1][1], entries[#entries][1], #entries, consumer)}
            end
        end
    end
    reads[#reads + 1] = slot
end
return {acks, reads}
