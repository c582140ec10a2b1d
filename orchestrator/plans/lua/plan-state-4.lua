-- Moves a plan job to another state if it is in one of the given states, with its history entry,
-- an event, and an entry on the plan job feed (which wakes the runner waiting on it).
-- KEYS[1] plan job hash, KEYS[2] history list, KEYS[3] events stream, KEYS[4] plan job feed stream (fields plan_job, state)
-- ARGV[1] the new state, ARGV[2] the states it may come from (comma-separated), ARGV[3] now (ISO-8601),
-- ARGV[4] now (ms), ARGV[5] the event (JSON) or '', ARGV[6] the plan job id, ARGV[7] fields to set too (JSON object),
-- ARGV[8] whether the new state ends the plan job ('1': finished_ms is set), ARGV[9] the feed's length (XADD MAXLEN ~)
-- Returns 1 when the state changed, 0 when the plan job was not in one of the states (or is not there).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
local extra = cjson.decode(ARGV[7])
for k, v in pairs(extra) do redis.call('HSET', KEYS[1], k, v) end
if ARGV[8] == '1' then redis.call('HSET', KEYS[1], 'finished_ms', ARGV[4]) end
redis.call('RPUSH', KEYS[2], cjson.encode({state = ARGV[1], enter_time = ARGV[3]}))
if ARGV[5] ~= '' then redis.call('XADD', KEYS[3], '0-*', 'event', ARGV[5]) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*', 'plan_job', ARGV[6], 'state', ARGV[1])
return 1
