-- ipc.channel(sock [, {maxsize =, maxfds =}]): framed messages carrying Lua
-- values and descriptors over a stream or seqpacket socket.
--
-- A frame is a 6-byte header (magic, descriptor count, body length) and a
-- body holding one encoded value. The frame's descriptors go out with its
-- first bytes in one sendmsg, so the kernel hands them over with those
-- bytes; the receiver reads exactly one frame at a time (never past it, so
-- polling the socket tells the truth) and checks that the descriptors that
-- came with the frame's bytes are the ones its header announced.
local core = require "unixipc.core"

local type, error, pcall, next = type, error, pcall, next
local setmetatable, getmetatable, tostring = setmetatable, getmetatable, tostring
local pack, unpack, byte, sub, format = string.pack, string.unpack, string.byte, string.sub, string.format
local concat, tunpack = table.concat, table.unpack
local mtype = math.type

local MAGIC = 0xA5
local HEADER = "<BBI4"   -- magic, number of descriptors, body length
local HLEN = 6
local CHUNK = 65536      -- bytes asked per recvmsg on a stream
local RECORD = 32768     -- seqpacket: a frame goes out in records of at most this
local RECORDMAX = 65536  -- seqpacket: a longer record is a protocol error
local MAXDEPTH = 200     -- nesting limit, both ways
local DEFAULT_MAXSIZE = 64 * 1024 * 1024
local SCM_MAX_FD = core.SCM_MAX_FD or 253

local errno = core.errno
local EPROTO, EMSGSIZE, EINVAL, EAGAIN = errno.EPROTO, errno.EMSGSIZE, errno.EINVAL, errno.EAGAIN

-- ---- codec -------------------------------------------------------------
-- tags: 0 nil, 1 false, 2 true, 3 integer (<j), 4 float (<d), 5 string
-- (<s4), 6 table (<I4 pair count, then key, value, ...)

-- The encoder collects format codes and arguments and packs them with one
-- string.pack per FLUSH arguments (instead of one per value).
local FLUSH = 2000

local encode
encode = function(v, fmt, nf, args, na, out, depth, path)
  local t = type(v)
  if t == "string" then
    nf = nf + 1
    fmt[nf], args[na + 1], args[na + 2], na = "Bs4", 5, v, na + 2
  elseif t == "number" then
    nf = nf + 1
    if mtype(v) == "integer" then fmt[nf], args[na + 1] = "Bj", 3 else fmt[nf], args[na + 1] = "Bd", 4 end
    args[na + 2], na = v, na + 2
  elseif t == "boolean" then
    nf, na = nf + 1, na + 1
    fmt[nf], args[na] = "B", v and 2 or 1
  elseif t == "nil" then
    nf, na = nf + 1, na + 1
    fmt[nf], args[na] = "B", 0
  elseif t == "table" then
    if path[v] then error("cannot send a table that contains itself (cycle)", 0) end
    if depth >= MAXDEPTH then error(format("tables nested deeper than %d", MAXDEPTH), 0) end
    path[v] = true
    local count = 0
    for _ in next, v do count = count + 1 end
    nf = nf + 1
    fmt[nf], args[na + 1], args[na + 2], na = "BI4", 6, count, na + 2
    for k, x in next, v do
      nf, na = encode(k, fmt, nf, args, na, out, depth + 1, path)
      nf, na = encode(x, fmt, nf, args, na, out, depth + 1, path)
    end
    path[v] = nil
  else
    error(format("cannot send a %s", t), 0)
  end
  if na >= FLUSH then
    out[#out + 1] = pack(concat(fmt, "", 1, nf), tunpack(args, 1, na))
    nf, na = 1, 0
  end
  return nf, na
end

-- value -> body string; raises (message without position) for what cannot be sent
local function encodeall(v, path)
  local fmt, args, out = { "<" }, {}, {}
  local nf, na = encode(v, fmt, 1, args, 0, out, 0, path)
  if na > 0 then out[#out + 1] = pack(concat(fmt, "", 1, nf), tunpack(args, 1, na)) end
  return #out == 1 and out[1] or concat(out)
end

local decode
decode = function(s, pos, depth)
  local tag = byte(s, pos)
  if tag == 5 then
    return unpack("<s4", s, pos + 1)
  elseif tag == 3 then
    return unpack("<j", s, pos + 1)
  elseif tag == 4 then
    return unpack("<d", s, pos + 1)
  elseif tag == 6 then
    if depth >= MAXDEPTH then error("tables nested too deeply", 0) end
    local count
    count, pos = unpack("<I4", s, pos + 1)
    if count * 2 > #s - pos + 1 then error("table count beyond the frame", 0) end
    local t = {}
    for _ = 1, count do
      local k, v
      k, pos = decode(s, pos, depth + 1)
      if k == nil or k ~= k then error("invalid table key", 0) end
      v, pos = decode(s, pos, depth + 1)
      if v == nil or t[k] ~= nil then error("invalid table entry", 0) end
      t[k] = v
    end
    return t, pos
  elseif tag == 2 then
    return true, pos + 1
  elseif tag == 1 then
    return false, pos + 1
  elseif tag == 0 then
    return nil, pos + 1
  end
  error(tag and format("unknown value tag %d", tag) or "value cut short", 0)
end

-- ---- channel -------------------------------------------------------------

local Channel = {}
Channel.__index = Channel

local function closefds(list)
  for i = #list, 1, -1 do
    local o = list[i]
    list[i] = nil
    if o then o:close() end
  end
end

local function checkopen(self)
  local sock = self.sock
  if not sock then error("attempt to use a closed channel", 3) end
  return sock
end

local function resetframe(self)
  self.head, self.total, self.have, self.nfds = "", nil, 0, 0
  local parts = self.parts
  for i = #parts, 1, -1 do parts[i] = nil end
end

-- a broken frame: nothing can be trusted after it, so the channel closes
local function fail(self, msg, err)
  closefds(self.rfds)
  resetframe(self)
  local sock = self.sock
  self.sock = nil
  if sock then sock:close() end
  return nil, "channel: " .. msg, err or EPROTO
end

-- write s completely once a frame has started: a half-sent frame would
-- desynchronise the peer, so EAGAIN waits for the socket to drain
local function sendrest(self, sock, s)
  local pos, len = 1, #s
  while pos <= len do
    local piece
    if self.seq then piece = sub(s, pos, pos + RECORD - 1)
    elseif pos == 1 then piece = s
    else piece = sub(s, pos) end
    local n, msg, err = sock:send(piece)
    if n then
      pos = pos + n
    elseif err == EAGAIN then
      core.poll({ [sock] = "w" })
    else
      return fail(self, "frame cut short: " .. tostring(msg), err)
    end
  end
  return true
end

-- send(value [, fds]) -> true | nil, msg, errno
function Channel:send(value, fds)
  local sock = checkopen(self)
  local nf = 0
  if fds ~= nil then
    if type(fds) ~= "table" then
      error("bad argument #2 to 'send' (fds must be a list of descriptors, got " .. type(fds) .. ")", 2)
    end
    nf = #fds
  end
  local path = self.path
  local ok, body = pcall(encodeall, value, path)
  if not ok then
    for k in next, path do path[k] = nil end
    error("bad argument #1 to 'send' (" .. tostring(body) .. ")", 2)
  end
  local len = #body
  if len > self.maxsize then
    return nil, format("channel: frame of %d bytes exceeds maxsize %d", len, self.maxsize), EMSGSIZE
  end
  if nf > SCM_MAX_FD then
    return nil, format("channel: too many descriptors (%d, at most %d per frame)", nf, SCM_MAX_FD), EINVAL
  end
  local head = pack(HEADER, MAGIC, nf, len)
  local sopts, data = self.sopts, self.sdata
  local first = body
  if self.seq and len > RECORD - HLEN then first = sub(body, 1, RECORD - HLEN) end
  data[1], data[2] = head, first
  sopts.fds = nf > 0 and fds or nil
  local sent, msg, err = sock:sendmsg(sopts)
  data[1], data[2], sopts.fds = "", "", nil
  if not sent then return nil, msg, err end -- nothing went out
  local total = HLEN + #first
  if sent < total then
    if self.seq then return fail(self, "short seqpacket record", EPROTO) end
    local rest = sent < HLEN and (sub(head, sent + 1) .. body) or sub(body, sent - HLEN + 1)
    local ok2, m2, e2 = sendrest(self, sock, rest)
    if not ok2 then return ok2, m2, e2 end
  end
  if first ~= body then
    local ok2, m2, e2 = sendrest(self, sock, sub(body, #first + 1))
    if not ok2 then return ok2, m2, e2 end
  end
  return true
end

-- the header is complete in self.head: check it and start the body
local function takeheader(self, head)
  local magic, nfds, len = unpack(HEADER, head)
  if magic ~= MAGIC then return fail(self, "malformed frame (bad header)") end
  if len > self.maxsize then
    return fail(self, format("frame of %d bytes exceeds maxsize %d", len, self.maxsize), EMSGSIZE)
  end
  if nfds > self.maxfds then
    return fail(self, format("frame announces %d descriptors, at most %d accepted", nfds, self.maxfds))
  end
  self.head, self.total, self.nfds = "", len, nfds
  if #head > HLEN then -- seqpacket: the first record carries body bytes too
    local rest = sub(head, HLEN + 1)
    if #rest > len then return fail(self, "malformed frame (record longer than its frame)") end
    self.parts[1], self.have = rest, #rest
  end
  return true
end

-- recv() -> value, fds | nil, msg, errno. "eof" at a clean end of stream;
-- a timeout keeps the partial frame for the next call.
function Channel:recv()
  local sock = checkopen(self)
  local ropts, rfds, parts = self.ropts, self.rfds, self.parts
  while true do
    local total, want = self.total
    if total then
      want = total - self.have
      if want == 0 then break end
    else
      want = HLEN - #self.head
    end
    local data, fds, info
    if total and not self.seq then
      -- the rest of a stream frame: its descriptors came with its first
      -- bytes (the header); any a peer sends with later bytes belong to no
      -- frame, and recv lets the kernel close them
      data, fds, info = sock:recv(want < CHUNK and want or CHUNK)
      if data then
        parts[#parts + 1] = data
        self.have = self.have + #data
        goto continue
      end
    else
      ropts.size = self.seq and RECORDMAX or (want < CHUNK and want or CHUNK)
      data, fds, info = sock:recvmsg(ropts)
    end
    if not data then
      if fds == "eof" and (total or self.head ~= "" or #rfds > 0) then
        return fail(self, "end of stream in the middle of a frame")
      end
      return nil, fds, info
    end
    local nr = #fds
    if nr > 0 then
      local base = #rfds
      for i = 1, nr do rfds[base + i] = fds[i] end
      if base + nr > self.maxfds then return fail(self, "too many descriptors with one frame") end
    end
    if info.ctruncated then return fail(self, "descriptors truncated (more than maxfds sent)") end
    if info.truncated then return fail(self, "record truncated (longer than a frame record)") end
    if not total then
      local head = self.head
      head = head == "" and data or head .. data
      if #head < HLEN then
        self.head = head
      else
        local ok, m, e = takeheader(self, head)
        if not ok then return ok, m, e end
      end
    elseif #data > want then
      return fail(self, "malformed frame (record longer than its frame)")
    elseif #data > 0 then
      parts[#parts + 1] = data
      self.have = self.have + #data
    end
    ::continue::
  end
  if #rfds ~= self.nfds then
    return fail(self, format("frame announced %d descriptors but %d came with it", self.nfds, #rfds))
  end
  local body = #parts == 1 and parts[1] or concat(parts)
  local ok, value, pos = pcall(decode, body, 1, 0)
  if not ok then return fail(self, "malformed frame (" .. tostring(value) .. ")") end
  if pos ~= #body + 1 then return fail(self, "malformed frame (trailing bytes)") end
  local got = {}
  for i = 1, #rfds do got[i], rfds[i] = rfds[i], nil end
  resetframe(self)
  return value, got
end

-- close(): closes the socket and any descriptor of a half-received frame
function Channel:close()
  local sock = self.sock
  closefds(self.rfds)
  resetframe(self)
  if not sock then return true end
  self.sock = nil
  return sock:close()
end

Channel.__close = function(self) self:close() end

function Channel:__tostring()
  if not self.sock then return "channel (closed)" end
  return format("channel (%s, fd %d)", self.seq and "seqpacket" or "stream", self.sock:getfd())
end

-- event-loop protocols: select (getfd), cqueues (pollfd/events/timeout), ipc.poll
function Channel:getfd() return self.sock and self.sock:getfd() or -1 end
function Channel:fileno() return checkopen(self):fileno() end
function Channel:pollfd() return checkopen(self):pollfd() end
function Channel:events() return "r" end
function Channel:timeout() return checkopen(self):timeout() end
function Channel:settimeout(t) return checkopen(self):settimeout(t) end
function Channel:setnonblocking(on) return checkopen(self):setnonblocking(on) end

local function optint(opts, k, def, lo, hi)
  local v = opts[k]
  if v == nil then return def end
  if mtype(v) ~= "integer" or v < lo or v > hi then
    error(format("bad argument #2 to 'channel' (%s must be an integer from %d to %d)", k, lo, hi), 3)
  end
  return v
end

local function channel(sock, opts)
  local mt = type(sock) == "userdata" and getmetatable(sock)
  if not mt or mt.__name ~= "unixipc.socket" then
    error("bad argument #1 to 'channel' (unixipc socket expected, got " .. type(sock) .. ")", 2)
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'channel' (options must be a table, got " .. type(opts) .. ")", 2)
  end
  for k in next, opts do
    if k ~= "maxsize" and k ~= "maxfds" then
      error("bad argument #2 to 'channel' (unknown option '" .. tostring(k) .. "')", 2)
    end
  end
  local kind = sock:getoption("type")
  if kind ~= "stream" and kind ~= "seqpacket" then
    error("bad argument #1 to 'channel' (stream or seqpacket socket expected, got " .. tostring(kind) .. ")", 2)
  end
  local maxfds = optint(opts, "maxfds", SCM_MAX_FD, 0, SCM_MAX_FD)
  local self = {
    sock = sock,
    seq = kind == "seqpacket",
    maxsize = optint(opts, "maxsize", DEFAULT_MAXSIZE, 0, 0xffffffff),
    maxfds = maxfds,
    ropts = { size = HLEN, maxfds = maxfds },
    sdata = { "", "" },
    rfds = {},
    parts = {},
    path = {},
  }
  self.sopts = { data = self.sdata }
  resetframe(self)
  return setmetatable(self, Channel)
end

return function(ipc)
  ipc.channel = channel
  return ipc
end
