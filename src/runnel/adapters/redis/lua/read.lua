-- A consumer-group read of one partition, optionally fenced. Never blocks.
--
-- KEYS: stream [, lock, fenced-counter]
-- ARGV: group, consumer, count, start [, token]
-- With a fence, the read happens only while the lock holds the token; otherwise the
-- fenced counter is incremented and the reply is the error "FENCED <lock>".
-- Returns {entries} for new entries (start ">"), and {entries, pending} for history
-- reads, where pending is XPENDING's extended reply for the returned ids (taken after the
-- read, so each delivery count includes this delivery). An entry trimmed after delivery
-- comes back as {id, false}.

if #KEYS > 1 and redis.call('GET', KEYS[2]) ~= ARGV[5] then
    redis.call('INCR', KEYS[3])
    return redis.error_reply('FENCED ' .. KEYS[2])
end

local group, consumer, count, start = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
    'STREAMS', KEYS[1], start)
if not reply then
    return {{}}
end
local entries = reply[1][2]
if start == '>' or #entries == 0 then
    return {entries}
end
local pending = redis.call('XPENDING', KEYS[1], group, entries[1][1], entries[#entries][1],
    #entries, consumer)
return {entries, pending}
