--[[
  Releases the store's write fence: it is deleted only while the caller still
  holds it, so a holder whose fence lapsed never drops another's.
    KEYS[1] the fence   ARGV[1] the holder's token
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
