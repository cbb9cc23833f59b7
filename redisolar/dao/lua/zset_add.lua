-- zset_add.lua: ZADD score/member pairs to one sorted set, as derived state (see scripts.py,
-- DERIVED_SCRIPTS: it runs even when Redis is out of memory, after the write it follows was accepted).
--
-- KEYS[1]    the sorted set
-- ARGV       optional ZADD flags (GT, LT, NX, XX), then score, member pairs
-- Returns the number of members added.

return redis.call('ZADD', KEYS[1], unpack(ARGV))
