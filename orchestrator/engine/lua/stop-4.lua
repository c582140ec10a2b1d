-- Asks a job to stop: running or ready jobs become `stopping` and get a job_stopping event.
-- KEYS[1] job hash, KEYS[2] events stream, KEYS[3] history list, KEYS[4] the job feed stream (fields job, state)
-- ARGV[1] now (ISO-8601), ARGV[2] who asked (login), ARGV[3] the job id (for the job feed),
-- ARGV[4] the job feed's length, kept approximately (XADD MAXLEN ~)
-- Returns 1 when the job is now stopping, 0 when it was stopping or ended already.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'ready' and state ~= 'new' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'stopping')
redis.call('RPUSH', KEYS[3], cjson.encode({state = 'stopping', enter_time = ARGV[1]}))
redis.call('XADD', KEYS[2], '0-*', 'event', cjson.encode({type = 'job_stopping', timestamp = ARGV[1], details = {login = ARGV[2]}}))
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'job', ARGV[3], 'state', 'stopping')
return 1
