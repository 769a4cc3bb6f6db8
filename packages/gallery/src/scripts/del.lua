--[[
  Deletes a subject's templates and appends the change to the stream in the
  same step. The barrier and the tombstone are set even when there was nothing
  to delete, so an enrolment queued before this removal cannot land after it.

  KEYS: slot hash, subject hash, stream, barrier, tombstone.
  ARGV: subject, slot, stream maxlen, seq, barrier ttl (s).
  Returns the change id, 'stale', or false when the subject had no templates.
]]
--- @include "ordering"

local seq = tonumber(ARGV[4])
if isStale(KEYS[4], seq) then return 'stale' end
local ids = removeOlder(KEYS[1], KEYS[2], seq)
setBarrier(KEYS[4], ARGV[4], ARGV[5])
redis.call('SET', KEYS[5], ARGV[4])
if #ids == 0 then return false end
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'del', 'subject', ARGV[1], 'slot', ARGV[2],
  'add', '', 'del', table.concat(ids, ','))
