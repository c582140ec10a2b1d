-- Where a URI's session is: its broker and whether that broker's lease holds.
-- KEYS[1] the session directory, ARGV[1] the URI, ARGV[2] the prefix of brokers' lease keys.
-- The lease key cannot be declared (it depends on the entry read); it shares the directory's hash
-- tag, so on Redis Cluster it is in the same slot, and so on the same node.
-- Returns {} when no broker has it, else {broker id, 1 if its lease holds else 0}.
local b = redis.call('HGET', KEYS[1], ARGV[1])
if not b then return {} end
return {b, redis.call('EXISTS', ARGV[2] .. b)}
