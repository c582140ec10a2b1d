-- Releases nodes of an ordered job whose prerequisites have all finished: moves them from the
-- blocked set to the pending list in one step. Nodes with a prerequisite that failed, errored or
-- was skipped are returned (with that prerequisite) for the caller to skip; they stay blocked
-- until it has, so that a crash in between loses nothing.
-- KEYS[1] blocked set, KEYS[2] deps hash (node → JSON array), KEYS[3] nodes hash, KEYS[4] pending list
-- Returns {ready nodes, {node1, prerequisite1, node2, prerequisite2, ...}}.
local ready, skip = {}, {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local deps = cjson.decode(redis.call('HGET', KEYS[2], node) or '[]')
  local all, bad = true, nil
  for _, d in ipairs(deps) do
    local raw = redis.call('HGET', KEYS[3], d)
    local st = 'finished'
    if raw then st = cjson.decode(raw).state end
    if st == 'failed' or st == 'errored' or st == 'skipped' then bad = d break end
    if st ~= 'finished' then all = false end
  end
  if bad then
    table.insert(skip, node)
    table.insert(skip, bad)
  elseif all then
    redis.call('SREM', KEYS[1], node)
    redis.call('RPUSH', KEYS[4], node)
    table.insert(ready, node)
  end
end
return {ready, skip}
