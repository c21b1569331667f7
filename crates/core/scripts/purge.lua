-- purge: delete jobs in one state (never active ones), a batch per call.
-- KEYS[1] that state's index: the pending list, or the scheduled / retry / succeeded / dead /
-- cancelled zset
-- ARGV[1] queue base, ARGV[2] the state, ARGV[3] 'list' or 'zset', ARGV[4] max jobs per call
-- Returns the number of ids taken off the index (0 when it is empty).
local index_key = KEYS[1]
local base, state, index_type, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids
if index_type == 'list' then
  ids = redis.call('RPOP', index_key, limit)
  if not ids then return 0 end
else
  ids = redis.call('ZRANGE', index_key, 0, limit - 1)
  if #ids == 0 then return 0 end
  redis.call('ZREM', index_key, unpack(ids))
end
for _, id in ipairs(ids) do
  local jk = base .. 'job:' .. id
  local st = redis.pcall('HGET', jk, 'state')
  if st == state then redis.call('DEL', jk) end
end
return #ids
