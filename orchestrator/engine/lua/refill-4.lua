-- Hands pending nodes of a job to the queue while fewer than `concurrency` of its nodes are
-- ready or running: moves them from new to ready in the same step.
-- KEYS[1] job hash, KEYS[2] pending list, KEYS[3] nodes hash, KEYS[4] counts hash
-- ARGV[1] concurrency (0 = unlimited), ARGV[2] now (ISO-8601)
-- Returns the nodes now ready (to be added to the queue by the caller).
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'ready' then return {} end
local limit = tonumber(ARGV[1])
local inflight = tonumber(redis.call('HGET', KEYS[4], 'ready') or '0') + tonumber(redis.call('HGET', KEYS[4], 'running') or '0')
local out = {}
while limit == 0 or inflight < limit do
  local node = redis.call('LPOP', KEYS[2])
  if not node then break end
  local raw = redis.call('HGET', KEYS[3], node)
  if raw and cjson.decode(raw).state == 'new' then
    local ready = string.gsub(raw, '"state":"new"', '"state":"ready"', 1)
    redis.call('HSET', KEYS[3], node, ready)
    redis.call('HINCRBY', KEYS[4], 'new', -1)
    redis.call('HINCRBY', KEYS[4], 'ready', 1)
    inflight = inflight + 1
    table.insert(out, node)
  end
end
return out
