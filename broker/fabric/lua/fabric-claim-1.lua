-- A session opened on this broker: the directory entry of its URI becomes this broker's.
-- KEYS[1] the session directory (hash: URI -> broker id)
-- ARGV[1] the URI, ARGV[2] this broker's id
-- Returns the broker that had the URI before ('' for none, or this one).
local old = redis.call('HGET', KEYS[1], ARGV[1]) or ''
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
