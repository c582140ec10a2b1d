-- Extends a node's busy mark, only if the given job holds it (never makes one: a run that ended
-- first has cleared it already).
-- KEYS[1] the node's busy key
-- ARGV[1] the job's id
-- ARGV[2] how long the mark lasts from now, milliseconds
-- Returns 1 when extended, 0 when the mark was absent or another job's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
