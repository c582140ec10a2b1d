-- Clears a node's busy mark, only if the given job holds it (a later job's mark stays).
-- KEYS[1] the node's busy key
-- ARGV[1] the releasing job's id
-- Returns 1 when cleared, 0 when the mark was absent or another job's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
