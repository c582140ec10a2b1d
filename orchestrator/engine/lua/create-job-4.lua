-- Creates a job with its nodes, counts, queues and history in one step, unless the caller's
-- deadline has passed by Redis's own clock (the API gave up on this request: a command that
-- Redis runs late must create nothing, not even an id) or the request's Idempotency-Key
-- reservation is not held. The job's id is taken here, so its own keys are made here from
-- templates (built by keys.ts) in which ARGV[2] stands for the id; they are not declared in KEYS
-- (a standalone Redis, as BullMQ's own scripts assume).
-- KEYS[1] job id sequence, KEYS[2] job index zset, KEYS[3] idempotency key (any key when ARGV[14] is ''),
-- KEYS[4] the job feed stream (every job's creation and state changes; fields job, state)
-- ARGV[1] deadline (ms since the epoch; 0 = none)
-- ARGV[2] the id slot in the templates and in ARGV[15] (plain text, no Lua pattern characters)
-- ARGV[3..9] key templates: job hash, nodes hash, counts hash, pending list, blocked set, deps hash, history list
-- ARGV[10] created (ms; the index score)
-- ARGV[11] JSON object: the job hash's fields but `id`, every value a string
-- ARGV[12] JSON object: node name -> its record (a JSON string)
-- ARGV[13] JSON object: {count = the number of nodes; free = nodes that may start at once, in
--         order; blocked = {node -> JSON array of the nodes it waits for}; history = [JSON strings]}
-- ARGV[14] idempotency reservation token ('' = no Idempotency-Key)
-- ARGV[15] the key's final record (JSON, the id slot in it replaced by the id), written in place of the reservation
-- ARGV[16] the final record's lifetime (ms)
-- ARGV[17] the job feed's length, kept approximately (XADD MAXLEN ~)
-- Returns the new job id (a string), or 0 when the deadline had passed, -1 when the reservation is
-- not held; in those two cases nothing was written.
local deadline = tonumber(ARGV[1])
if deadline > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now > deadline then return 0 end
end
if ARGV[14] ~= '' then
  local cur = redis.call('GET', KEYS[3])
  if not cur then return -1 end
  local rec = cjson.decode(cur)
  if rec.state ~= 'pending' or rec.token ~= ARGV[14] then return -1 end
end

local id = tostring(redis.call('INCR', KEYS[1]))
local function key(i) return (string.gsub(ARGV[i], ARGV[2], id)) end
local job, nodes, counts, pending, blocked, deps, history = key(3), key(4), key(5), key(6), key(7), key(8), key(9)

redis.call('HSET', job, 'id', id)
for k, v in pairs(cjson.decode(ARGV[11])) do redis.call('HSET', job, k, v) end
redis.call('ZADD', KEYS[2], ARGV[10], id)
local rest = cjson.decode(ARGV[13])
if rest.count > 0 then
  for node, record in pairs(cjson.decode(ARGV[12])) do redis.call('HSET', nodes, node, record) end
  redis.call('HSET', counts, 'new', rest.count)
  for _, node in ipairs(rest.free) do redis.call('RPUSH', pending, node) end
  for node, waits in pairs(rest.blocked) do
    redis.call('SADD', blocked, node)
    redis.call('HSET', deps, node, waits)
  end
end
for _, entry in ipairs(rest.history) do redis.call('RPUSH', history, entry) end
if ARGV[14] ~= '' then redis.call('SET', KEYS[3], (string.gsub(ARGV[15], ARGV[2], id)), 'PX', ARGV[16]) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[17], '*', 'job', id, 'state', 'running')
return id
