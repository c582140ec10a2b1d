-- A session closed: its directory entry goes, unless another broker has the URI by now.
-- KEYS[1] the session directory, ARGV[1] the URI, ARGV[2] the broker letting it go
-- Returns 1 when removed, 0 otherwise.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
