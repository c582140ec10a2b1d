-- Nomad face: registers a new version of a job, unless the caller's deadline has passed by
-- Redis's clock (the API gave up on the registration: a command run late must create nothing).
-- KEYS[1] set of job ids, KEYS[2] the job's create-index string, KEYS[3] the job's versions list
-- ARGV[1] deadline (ms since the epoch; 0 = none), ARGV[2] job id, ARGV[3] the version's
-- ModifyIndex, ARGV[4] the version (JSON)
-- Returns 1 when added, 0 when the deadline had passed (nothing written).
local deadline = tonumber(ARGV[1])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return 0 end
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'NX')
redis.call('RPUSH', KEYS[3], ARGV[4])
return 1
