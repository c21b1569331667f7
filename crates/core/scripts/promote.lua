-- promote: move due delayed and retrying jobs to the pending list.
-- KEYS[1] scheduled zset, KEYS[2] retry zset, KEYS[3] pending list, KEYS[4] wake list, KEYS[5] dead
-- ARGV[1] queue base, ARGV[2] max jobs per index per call
-- Returns { moved, found }: the number of jobs made pending, and what the call found that no
-- Celeriac script writes ({ id, what, index, detail, ... }, lib.lua 'Anomalies'). A due id
-- whose record says `pending` is pushed to the pending list too (it is what the record says);
-- one whose record is in another of Celeriac's states and in no index of it is a stray.
local scheduled_key, retry_key, pending_key, wake_key, dead_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local base, limit = ARGV[1], tonumber(ARGV[2])
local now_ms, now_us = clock()
local moved = 0
local found = {}
for _, z in ipairs({ { scheduled_key, 'scheduled' }, { retry_key, 'retry' } }) do
  local key, index = z[1], z[2]
  local ids = redis.call('ZRANGEBYSCORE', key, '-inf', now_ms, 'LIMIT', 0, limit)
  if #ids > 0 then redis.call('ZREM', key, unpack(ids)) end
  for _, id in ipairs(ids) do
    local jk = base .. 'job:' .. id
    local st = redis.pcall('HGET', jk, 'state')
    if type(st) == 'table' and st.err then
      note_stray(base, found, id, 'wrong_type', index, redis.call('TYPE', jk)['ok'], now_ms)
    elseif st == 'scheduled' or st == 'retrying' then
      redis.call('HSET', jk, 'state', 'pending')
      redis.call('LPUSH', pending_key, id)
      moved = moved + 1
    elseif st == 'pending' then
      redis.call('LPUSH', pending_key, id)
      moved = moved + 1
    elseif not st then
      bury_orphan(base, dead_key, id, now_ms, now_us, 'no job record (or no `state` field) for this scheduled id (see docs/wire-format.md)', found, index)
    elseif not KNOWN_STATE[st] then
      bury_orphan(base, dead_key, id, now_ms, now_us, 'job record has state ' .. string.format('%q', st) .. '; a producer writes "scheduled" for a delayed job (see docs/wire-format.md)', found, index)
    else
      misplaced(base, found, id, index, st, now_ms)
    end
  end
end
if moved > 0 then wake(wake_key) end
return { moved, found }
