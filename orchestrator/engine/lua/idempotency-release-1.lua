-- Lets go of an Idempotency-Key reserved by a request that failed before it created anything,
-- so that the client may retry with the same key.
-- KEYS[1] the idempotency key
-- ARGV[1] the request's token
-- Returns 1 when released, 0 when the key was not this request's pending reservation.
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local rec = cjson.decode(cur)
if rec.state ~= 'pending' or rec.token ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
