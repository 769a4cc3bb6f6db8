--[[
  Deletes a subject's templates and appends the change to the stream in the
  same step. The barrier and the tombstone are set even when there was nothing
  to delete, so an enrolment queued before this removal cannot land after it.

  Every removal that is not stale is logged (the removal log: subject, slot,
  sequence), whether or not it found templates: a restore re-applies it, and
  its barrier then keeps an enrolment queued before it from landing.

  KEYS: slot hash, subject hash, stream, barrier, tombstone, fence, removal log.
  ARGV: subject, slot, stream maxlen, seq, barrier ttl (s), fence token ('' for none).
  Returns {change id ('' when the subject had no templates), removal log id},
  or 'stale'; a FENCED error while a backup or restore holds the fence.
]]
--- @include "ordering"

if fenced(KEYS[6], ARGV[6]) then return redis.error_reply('FENCED a backup or restore holds the store') end
local seq = tonumber(ARGV[4])
if isStale(KEYS[4], seq) then return 'stale' end
local logged = redis.call('XADD', KEYS[7], '*', 'subject', ARGV[1], 'slot', ARGV[2], 'seq', ARGV[4])
local ids = removeOlder(KEYS[1], KEYS[2], seq)
setBarrier(KEYS[4], ARGV[4], ARGV[5])
redis.call('SET', KEYS[5], ARGV[4])
if #ids == 0 then return {'', logged} end
return {redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'del', 'subject', ARGV[1], 'slot', ARGV[2],
  'add', '', 'del', table.concat(ids, ',')), logged}
