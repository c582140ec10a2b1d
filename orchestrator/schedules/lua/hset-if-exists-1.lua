-- Writes fields of a schedule's record only while the record exists (a schedule deleted meanwhile
-- is not brought back by a late write), optionally counting a run.
-- KEYS[1] the schedule's record (HASH)
-- ARGV[1] a field to increment by 1, or '' for none
-- ARGV[2..] field, value pairs to set
-- Returns 1 when written, 0 when the record does not exist (nothing written).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[1], 1) end
if #ARGV >= 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return 1
