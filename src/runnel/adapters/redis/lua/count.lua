-- How many entries of a stream have ids in [ARGV[1], ARGV[2]] (an operator's dry run).
-- KEYS[1]: the stream. XRANGE bounds: "-", "+", an id, or "(" and an id (exclusive).
-- The stream is capped (partition_size), so this is bounded; it writes nothing.
return #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2])
