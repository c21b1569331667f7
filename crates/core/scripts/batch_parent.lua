-- batch_parent: note on a parent job's record the batch it creates, so that `celeriac status
-- PARENT` finds a batch whose id is not the parent's own. Only an existing record is changed:
-- a parent deleted meanwhile is not re-created as a stray hash. Noting again overwrites.
-- KEYS[1] the parent's job record
-- ARGV[1] the batch's queue, ARGV[2] the batch's id
-- Returns 1 when noted, 0 when the record does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'spawned_queue', ARGV[1], 'spawned_batch', ARGV[2])
return 1
