-- Deletes a key only while it holds the caller's value: a node's busy mark cleared by the job that
-- holds it (a later job's mark stays), a vote lease let go by its holder (a lease that lapsed and
-- was taken by another orchestrator stays that one's).
-- KEYS[1] the busy mark or the vote lease
-- ARGV[1] the holder's value (the job id, the lease token)
-- Returns 1 when deleted, 0 when absent or another's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
