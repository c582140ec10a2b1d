-- Moves one node of a job from one state to another, atomically with its counts, its event and,
-- when it was the last node to end, the job's own end.
-- KEYS[1] job hash, KEYS[2] nodes hash, KEYS[3] counts hash, KEYS[4] events stream, KEYS[5] history list,
-- KEYS[6] the job feed stream (an entry when the job ends: fields job, state)
-- ARGV[1] node name
-- ARGV[2] comma-separated states the node may be in (the transition is refused otherwise)
-- ARGV[3] new node record: a non-empty JSON object without latest_event_id (kept as text, so that
--         empty arrays in results survive; cjson would turn them into objects)
-- ARGV[4] new state
-- ARGV[5] event type ('' for none)
-- ARGV[6] event JSON (without id)
-- ARGV[7] comma-separated terminal node states
-- ARGV[8] now (ISO-8601)
-- ARGV[9] now (ms)
-- ARGV[10] comma-separated job states in which the transition is refused too ('' for none)
-- ARGV[11] the job id (for the job feed)
-- ARGV[12] the job feed's length, kept approximately (XADD MAXLEN ~)
-- Returns {eventId or '', jobEndState or ''}, or false when the node was not in an allowed state.
local current = redis.call('HGET', KEYS[2], ARGV[1])
local from = 'new'
if current then from = cjson.decode(current).state end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == from then allowed = true end end
if not allowed then return false end
if ARGV[10] and ARGV[10] ~= '' then
  local js = redis.call('HGET', KEYS[1], 'state')
  for s in string.gmatch(ARGV[10], '[^,]+') do if s == js then return false end end
end

local eventId = ''
local record = ARGV[3]
if ARGV[5] ~= '' then
  local id = redis.call('XADD', KEYS[4], '0-*', 'event', ARGV[6])
  eventId = string.match(id, '^0%-(%d+)$')
  record = string.sub(record, 1, -2) .. ',"latest_event_id":' .. eventId .. '}'
end
redis.call('HSET', KEYS[2], ARGV[1], record)
redis.call('HINCRBY', KEYS[3], from, -1)
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)

-- Has the job ended? Every node is in a terminal state.
local jobEnd = ''
local total = tonumber(redis.call('HGET', KEYS[1], 'node_count') or '0')
local ended, failed = 0, 0
for s in string.gmatch(ARGV[7], '[^,]+') do
  local n = tonumber(redis.call('HGET', KEYS[3], s) or '0')
  ended = ended + n
  if s == 'failed' or s == 'errored' then failed = failed + n end
end
local jobState = redis.call('HGET', KEYS[1], 'state')
if ended == total and (jobState == 'running' or jobState == 'stopping' or jobState == 'ready') then
  if jobState == 'stopping' then jobEnd = 'stopped' elseif failed > 0 then jobEnd = 'failed' else jobEnd = 'finished' end
  redis.call('HSET', KEYS[1], 'state', jobEnd, 'finished_ms', ARGV[9])
  redis.call('RPUSH', KEYS[5], cjson.encode({state = jobEnd, enter_time = ARGV[8]}))
  local type = 'job_finished'
  if jobEnd == 'stopped' then type = 'job_aborted' end
  redis.call('XADD', KEYS[4], '0-*', 'event', cjson.encode({type = type, timestamp = ARGV[8], details = {state = jobEnd}}))
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[12], '*', 'job', ARGV[11], 'state', jobEnd)
end
return {eventId, jobEnd}
