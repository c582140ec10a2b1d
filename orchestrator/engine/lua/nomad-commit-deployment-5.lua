-- Nomad face: one reconcile's changes to a deployment, only if nobody changed it since it was read
-- (compare-and-set on the deployment's version; every change to a deployment goes through here).
-- KEYS[1] the deployment's version (string), KEYS[2] the deployment (string), KEYS[3] zset of its
-- allocations, KEYS[4] zset of all deployments, KEYS[5] zset of the job's deployments; then one
-- key per allocation written (KEYS[6..]), in the order of their ARGV triples.
-- ARGV[1] the version read, ARGV[2] the deployment (JSON; '' = unchanged), ARGV[3] its
-- CreateIndex, ARGV[4] its ID; then per allocation: its JSON, its CreateIndex, its ID.
-- Returns the new version, or -1 when the version was no longer the one read (nothing written).
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return -1 end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[4])
end
local n = #KEYS - 5
for i = 1, n do
  local base = 4 + (i - 1) * 3
  redis.call('SET', KEYS[5 + i], ARGV[base + 1])
  redis.call('ZADD', KEYS[3], ARGV[base + 2], ARGV[base + 3])
end
return redis.call('INCR', KEYS[1])
