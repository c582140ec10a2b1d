-- Nomad face: creates a deployment, unless the caller's deadline has passed by Redis's clock
-- (a registration the API answered 503 for must not start a deployment later).
-- KEYS[1] the deployment's string, KEYS[2] zset of all deployments, KEYS[3] zset of the job's
-- ARGV[1] deadline (ms since the epoch; 0 = none), ARGV[2] deployment (JSON), ARGV[3] its
-- CreateIndex, ARGV[4] its ID
-- Returns 1 when created, 0 when the deadline had passed (nothing written).
local deadline = tonumber(ARGV[1])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
