-- Keeps a request's answer under its Idempotency-Key, if the key is still this request's.
-- KEYS[1] the idempotency key
-- ARGV[1] the request's token, ARGV[2] the final record (JSON), ARGV[3] its lifetime (ms)
-- Returns 1 when written, 0 when the key is gone or another request's.
local cur = redis.call('GET', KEYS[1])
if not cur or cjson.decode(cur).token ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
