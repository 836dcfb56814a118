-- libFuzzer driver (a): the channel frame decoder fed arbitrary bytes.
--
-- First byte, bit 0: 0 = core._decode(rest) directly (the body codec),
-- 1 = a channel over a socketpair whose peer sends frames built from the
-- input and then goes away. Frame headers are checked in Lua, which the
-- fuzzer's coverage does not see, so the driver builds the frames: most
-- headers are right, some have a wrong magic, a wrong descriptor count, a
-- wrong or huge length, or stop mid-frame; descriptors ride along.
-- The receiver must answer every frame with a value or nil, msg, errno --
-- never raise -- and leave no descriptor behind (fuzz/target.c checks).
local ipc = require "unixipc"
local R = require "reader"

local pack = string.pack
local decode = ipc._decode

local function finding(fmt, ...) error("FINDING: " .. fmt:format(...), 0) end

local function sendframes(r, a, seq, spare)
  for _ = 1, 12 do
    if r:eof() then return end
    local how = r:byte()
    local body = r:bytes(r:len())
    local nf = how & 3
    local nfds = (how & 4 ~= 0) and r:byte() or nf
    local magic = (how & 8 ~= 0) and r:byte() or 0xA5
    local len = #body
    if how & 16 ~= 0 then len = r:pick({ r:u32(), 0xffffffff, len + 1, len - 1, 64 * 1024 * 1024 + 1 }) % 0x100000000 end
    local frame = pack("<BBI4", magic, nfds, len) .. body
    if how & 32 ~= 0 then frame = frame:sub(1, r:len()) end -- the peer stops mid-frame
    if how & 64 ~= 0 then frame = r:bytes(r:len()) end    -- garbage instead of a frame
    local fds
    if nf > 0 and #frame > 0 then
      fds = {}
      for i = 1, nf do fds[i] = spare end
    end
    local n
    if fds or seq then
      n = a:sendmsg { data = frame, fds = fds }
    elseif #frame > 0 then
      n = a:send(frame)
    end
    if not n and #frame > 0 then return end -- the socket is full: enough
  end
end

return function(data)
  local r = R.new(data)
  local mode = r:byte()
  if mode & 1 == 0 then
    local ok, v = pcall(decode, data, 2)
    if ok and type(v) == "table" then -- a decoded table encodes again
      local ok2, body = pcall(ipc._encode, v)
      if not ok2 then finding("decoded table does not encode: %s", body) end
    end
    return
  end
  local seq = mode & 2 ~= 0
  local opts = {}
  if mode & 4 ~= 0 then opts.maxsize = r:pick({ 0, 1, 5, 6, 64, 1000, 65536, 1 << 20 }) end
  if mode & 8 ~= 0 then opts.maxfds = r:pick({ 0, 1, 2, 3, 253 }) end
  local a, b = assert(ipc.socketpair(seq and "seqpacket" or "stream", { nonblock = true }))
  local pr, pw = assert(ipc.pipe())
  local ok, err = pcall(sendframes, r, a, seq, pw)
  a:close()
  pr:close()
  pw:close()
  if not ok then b:close(); error(err, 0) end
  b:setnonblocking(false) -- the peer is gone: recv never waits
  local ch = ipc.channel(b, opts)
  for _ = 1, 32 do
    local okr, v, fds, e = pcall(ch.recv, ch)
    if not okr then
      ch:close()
      finding("recv raised on peer data: %s", tostring(v))
    end
    if v == nil and type(fds) ~= "table" then
      if type(fds) ~= "string" then ch:close(); finding("recv failed without a message") end
      if fds ~= "eof" and type(e) ~= "number" then ch:close(); finding("recv failed without errno: %s", fds) end
      break
    end
    if type(fds) ~= "table" then ch:close(); finding("recv gave a value without its fds list") end
    for _, f in ipairs(fds) do f:close() end
  end
  ch:close()
end
