-- Lets go of a Chef job's vote lease, only if the caller still holds it (a lease that lapsed and
-- was taken by another orchestrator stays that one's).
-- KEYS[1] the job's vote lease
-- ARGV[1] the holder's token
-- Returns 1 when released, 0 when absent or another's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
