-- Marks a node busy with a Chef command job (it acked the job's commit), for a bounded time.
-- KEYS[1] the node's busy key
-- ARGV[1] the claiming job's id
-- ARGV[2] how long the mark lasts, milliseconds
-- ARGV[3] the id of a job whose mark may be replaced ('' for none): one the caller knows is stale
-- Returns 1 when the mark is now the job's (set, renewed or replaced); otherwise the id of the job
-- that holds it.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] or (ARGV[3] ~= '' and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return cur
