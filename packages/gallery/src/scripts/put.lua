--[[
  Adds templates to a subject, or replaces all of them, and appends the change
  to the stream in the same step.

  A removal leaves a tombstone (the subject's id and the removal's sequence,
  no vector, no expiry): imports skip a tombstoned subject, an explicit
  enrolment clears it.

  KEYS: slot hash, subject hash (templateId -> seq), stream, barrier, tombstone, fence.
  ARGV: subject, slot, replace ('1'), stream maxlen, seq, barrier ttl (s),
        mode ('enrol' | 'import'), fence token ('' for none), then (templateId, record) pairs.
  Returns {change id, removed ids joined by ','}, {'', 'stale'} or {'', 'removed'};
  a FENCED error while a backup or restore holds the fence.
]]
--- @include "ordering"

if fenced(KEYS[6], ARGV[8]) then return redis.error_reply('FENCED a backup or restore holds the store') end
local seq = tonumber(ARGV[5])
if isStale(KEYS[4], seq) then return {'', 'stale'} end
if ARGV[7] == 'import' then
  if redis.call('EXISTS', KEYS[5]) == 1 then return {'', 'removed'} end
else
  redis.call('DEL', KEYS[5])
end
local removed = {}
if ARGV[3] == '1' then
  removed = removeOlder(KEYS[1], KEYS[2], seq)
  setBarrier(KEYS[4], ARGV[5], ARGV[6])
end
local added = {}
for i = 9, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  local prev = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '-1')
  if seq > prev then redis.call('HSET', KEYS[2], ARGV[i], ARGV[5]) end
  table.insert(added, ARGV[i])
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'put', 'subject', ARGV[1], 'slot', ARGV[2],
  'add', table.concat(added, ','), 'del', table.concat(removed, ','))
return {id, table.concat(removed, ',')}
