-- strays: settle strays of one queue (`celeriac jobs strays --repair`): records found outside
-- the index of their state, and job keys that are not hashes (lib.lua, 'Anomalies').
-- KEYS[1] the queue's strays hash, KEYS[2] dead zset, KEYS[3] stats
-- ARGV[1] queue base, then the ids to settle (ids of the strays hash)
-- Each is looked at again, as it is now, and settled by what it is:
--   gone          its key no longer exists: forgotten
--   resolved      its record is in the index of its state again (a `pending` one is taken to
--                 be: the pending list is not searched): forgotten
--   dead_lettered a scheduled, retrying or active record in no index (or one whose state no
--                 Celeriac writes): made dead (schema_error) with what was found, for an
--                 operator to run again with `celeriac jobs retry`
--   reindexed     a succeeded, dead or cancelled record in no index: added to its retention
--                 index (now), so retention deletes it in time
--   converted     a job key that is a string (an envelope written with SET): made a dead
--                 record (schema_error) holding the string as its `msg`
--   left          a job key of another type (list, set, …): left for an operator to delete, and
--                 kept in the strays hash
-- Returns { id, action, detail, ... }.
local strays_key, dead_key, stats_key = KEYS[1], KEYS[2], KEYS[3]
local base = ARGV[1]
local FIRST_ID = 2
local now_ms, now_us = clock()
local out = {}
local FINAL = { succeeded = true, dead = true, cancelled = true }

local function settled(id, action, detail)
  out[#out + 1] = id
  out[#out + 1] = action
  out[#out + 1] = detail
  if action ~= 'left' then redis.call('HDEL', strays_key, id) end
end

local function dead_letter(jk, id, message)
  redis.call('HSET', jk, 'state', 'dead', 'reason', 'schema_error', 'error', message,
    'finished_us', now_us)
  redis.call('ZADD', dead_key, now_ms, id)
  redis.call('HINCRBY', stats_key, 'dead:schema_error', 1)
  redis.call('HINCRBY', stats_key, 'failed', 1)
end

for i = FIRST_ID, #ARGV do
  local id = ARGV[i]
  local jk = base .. 'job:' .. id
  local t = redis.call('TYPE', jk)['ok']
  if t == 'none' then
    settled(id, 'gone', 'no key any more')
  elseif t == 'string' then
    local value = redis.call('GET', jk)
    redis.call('DEL', jk)
    redis.call('HSET', jk, 'msg', value)
    dead_letter(jk, id, 'the job key was a Redis string (written with SET, not HSET): made a dead record holding it as its envelope by `celeriac jobs strays --repair`; run it with `celeriac jobs retry` once it is right (see docs/wire-format.md)')
    settled(id, 'converted', 'string')
  elseif t ~= 'hash' then
    settled(id, 'left', t)
  else
    local st = redis.call('HGET', jk, 'state')
    local own = st and STATE_INDEX[st]
    if st == 'pending' or (own and redis.call('ZSCORE', base .. own, id)) then
      settled(id, 'resolved', st)
    elseif own and FINAL[st] then
      redis.call('ZADD', base .. own, now_ms, id)
      settled(id, 'reindexed', st)
    else
      dead_letter(jk, id, 'the record says ' .. string.format('%q', tostring(st or '(no state)')) .. ' but is in no index of that state, so no worker would ever find it: dead-lettered by `celeriac jobs strays --repair`; run it with `celeriac jobs retry` (see docs/job-states.md)')
      settled(id, 'dead_lettered', tostring(st or ''))
    end
  end
end
return out
