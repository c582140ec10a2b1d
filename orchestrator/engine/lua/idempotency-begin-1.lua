-- Reserves an Idempotency-Key for one request, unless the caller's deadline has passed by Redis's
-- clock (the API gave up: a reservation run late must not block the client's retry).
-- KEYS[1] the idempotency key
-- ARGV[1] deadline (ms since the epoch)
-- ARGV[2] the reservation (JSON {state = 'pending', token, fingerprint})
-- ARGV[3] the reservation's lease (ms): it lapses if its request never finishes it
-- Returns {'reserved'}, {'exists', current record} or {'late'} (nothing written).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[1]) then return {'late'} end
local cur = redis.call('GET', KEYS[1])
if cur then return {'exists', cur} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return {'reserved'}
