--[[
  Renews the store's write fence: its lifetime is extended only while the
  caller still holds it (a lapsed fence, taken since by another, is left be).
    KEYS[1] the fence   ARGV[1] the holder's token   ARGV[2] its lifetime, ms
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
