-- events_add.lua: append events to one stream, trimmed to about a length, as derived state (see
-- scripts.py, DERIVED_SCRIPTS: it runs even when Redis is out of memory, after the write it reports was
-- accepted; the stream is trimmed by length, so the overshoot is bounded).
--
-- KEYS[1]    the stream (events:{events}, redisolar.events.stream)
-- ARGV[1]    the approximate MAXLEN
-- ARGV[2..]  kind, data pairs, one per event
-- Returns the ids of the new entries, in order.

local ids = {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[i], 'data', ARGV[i + 1])
end
return ids
