-- ipc.channel(sock [, {maxsize =, maxfds =}]): framed messages carrying Lua
-- values and descriptors over a stream or seqpacket socket.
--
-- A frame is a 6-byte header (magic, descriptor count, body length) and a
-- body holding one encoded value. The frame's descriptors go out with its
-- first bytes in one sendmsg, so the kernel hands them over with those
-- bytes; the receiver reads exactly one frame at a time (never past it, so
-- polling the socket tells the truth) and checks that the descriptors that
-- came with the frame's bytes are the ones its header announced.
--
-- A body larger than the channel's memfd threshold (1 MiB unless set)
-- travels in a sealed memfd instead of through the socket buffer: a frame
-- of magic 0xA6 whose header is all the socket carries, the memfd its last
-- descriptor (see docs: "Channels: big values").
local core = require "unixipc.core"
local check = require "unixipc.check"

local type, error, pcall, next = type, error, pcall, next
local setmetatable, getmetatable, tostring = setmetatable, getmetatable, tostring
local pack, unpack, sub, format = string.pack, string.unpack, string.sub, string.format
local concat = table.concat
local mtype = math.type

local MAGIC = 0xA5
local MEMFD = 0xA6       -- the body is the frame's last descriptor, a sealed memfd
local HEADER = "<BBI4"   -- magic, number of descriptors, body length
local HLEN = 6
local CHUNK = 65536      -- bytes asked per recvmsg on a stream
local RECORD = 32768     -- seqpacket: a frame goes out in records of at most this
local RECORDMAX = 65536  -- seqpacket: a longer record is a protocol error
local DEFAULT_MAXSIZE = 64 * 1024 * 1024
local DEFAULT_MEMFD = 1024 * 1024 -- bodies above this go by memfd
local SCM_MAX_FD = core.SCM_MAX_FD or 253

local errno = core.errno
local EPROTO, EMSGSIZE, EINVAL, EAGAIN, ENOSYS =
  errno.EPROTO, errno.EMSGSIZE, errno.EINVAL, errno.EAGAIN, errno.ENOSYS

-- ---- codec -------------------------------------------------------------
-- The body is one value: tag 0 nil, 1 false, 2 true, 3 integer (<j), 4 float
-- (<d), 5 string (<s4), 6 table (<I4 pair count, then key, value, ...),
-- tables nested at most 200 deep (README, Channels). Coded in C (csrc/codec.c):
-- encode(value, 2) raises "bad argument #1 to 'send' (...)" at the caller of
-- send for what cannot be sent; decode(s, pos) reads one value from s[pos] to
-- the end of s and raises the reason a body is malformed.
local encode, decode = core._encode, core._decode
local sealedmemfd, memfdbody, retype = core._sealedmemfd, core._memfdbody, core.retype

-- ---- channel -------------------------------------------------------------

-- headers of frames without descriptors and of at most HCACHE body bytes,
-- packed or unpacked once: body length -> header, header -> body length
local HCACHE = 4096
local JOIN = 16384 -- a frame with a body up to this is joined and sent in one piece
local hdrenc, hdrlen = {}, {}

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
  self.head, self.total, self.have, self.nfds, self.memlen = "", nil, 0, 0, nil
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

-- a frame whose body (the strings ...) goes in a sealed memfd, sent with
-- the frame's other descriptors; nil, "memfd" when this kernel has none
-- (the caller then sends through the socket)
local function sendmemfd(self, sock, len, fds, nf, ...)
  local m, msg, err = sealedmemfd(...)
  if not m then
    if err == ENOSYS then
      self.memfd = false
      return nil, "memfd"
    end
    return nil, "channel: " .. msg, err
  end
  local list = {}
  for i = 1, nf do list[i] = fds[i] end
  list[nf + 1] = m
  local head = pack(HEADER, MEMFD, nf + 1, len)
  local sent
  sent, msg, err = sock:sendmsg { data = head, fds = list }
  m:close()
  if not sent then return nil, msg, err end -- nothing went out
  if sent < HLEN then return sendrest(self, sock, sub(head, sent + 1)) end
  return true
end

-- send(value [, fds]) -> true | nil, msg, errno
function Channel:send(value, fds)
  local sock = self.sock
  if not sock then error("attempt to use a closed channel", 2) end
  local nf = 0
  if fds ~= nil then
    if type(fds) ~= "table" then
      error("bad argument #2 to 'send' (fds must be a list of descriptors, got " .. type(fds) .. ")", 2)
    end
    nf = #fds
  end
  local memfd = self.memfd
  if memfd and type(value) == "string" and #value > memfd and nf < SCM_MAX_FD then
    -- a big string: its body is tag 5, its length, itself (the codec's
    -- bytes) written from the string into the memfd, never copied whole
    local len = #value + 5
    if len > self.maxsize then
      return nil, format("channel: frame of %d bytes exceeds maxsize %d", len, self.maxsize), EMSGSIZE
    end
    local ok, msg, err = sendmemfd(self, sock, len, fds, nf, pack("<BI4", 5, #value), value)
    if ok then return true end
    if msg ~= "memfd" then return nil, msg, err end
  end
  local body = encode(value, 2) -- raises at send's caller
  local len = #body
  if len > self.maxsize then
    return nil, format("channel: frame of %d bytes exceeds maxsize %d", len, self.maxsize), EMSGSIZE
  end
  if nf > SCM_MAX_FD then
    return nil, format("channel: too many descriptors (%d, at most %d per frame)", nf, SCM_MAX_FD), EINVAL
  end
  memfd = self.memfd -- (false now if the kernel had no memfd for a string above)
  if memfd and len > memfd and nf < SCM_MAX_FD and type(value) == "table" then
    local ok, msg, err = sendmemfd(self, sock, len, fds, nf, body)
    if ok then return true end
    if msg ~= "memfd" then return nil, msg, err end
  end
  -- the frame's descriptors go with its first bytes; on seqpacket a frame
  -- goes out in records of at most RECORD bytes
  local head = nf == 0 and hdrenc[len]
  if not head then
    head = pack(HEADER, MAGIC, nf, len)
    if nf == 0 and len <= HCACHE then hdrenc[len], hdrlen[head] = head, len end
  end
  local sent, msg, err
  if len <= JOIN then
    -- a small frame: header and body joined, one send (sendmsg with fds)
    local frame = head .. body
    if nf == 0 then
      sent, msg, err = sock:send(frame)
    else
      sent, msg, err = sock:sendmsg { data = frame, fds = fds }
    end
    if not sent then return nil, msg, err end -- nothing went out
    if sent == len + HLEN then return true end
    if self.seq then return fail(self, "short seqpacket record", EPROTO) end
    return sendrest(self, sock, sub(frame, sent + 1))
  end
  -- a big one: header and the body's first bytes gathered by sendmsg (no
  -- copy of the body), the rest after
  local first = body
  if self.seq and len > RECORD - HLEN then first = sub(body, 1, RECORD - HLEN) end
  sent, msg, err = sock:sendmsg { data = { head, first }, fds = nf > 0 and fds or nil }
  if not sent then return nil, msg, err end -- nothing went out
  if sent < HLEN + #first then
    if self.seq then return fail(self, "short seqpacket record", EPROTO) end
    local rest = sent < HLEN and (sub(head, sent + 1) .. body) or sub(body, sent - HLEN + 1)
    return sendrest(self, sock, rest)
  end
  if first ~= body then return sendrest(self, sock, sub(body, #first + 1)) end
  return true
end

-- the header is complete in self.head: check it and start the body
local function takeheader(self, head)
  local magic, nfds, len = unpack(HEADER, head)
  if magic == MEMFD then -- the body is in the frame's last descriptor
    if len > self.maxsize then
      return fail(self, format("frame of %d bytes exceeds maxsize %d", len, self.maxsize), EMSGSIZE)
    end
    if nfds < 1 or nfds - 1 > self.maxfds then
      return fail(self, format("memfd frame announces %d descriptors, 1 to %d accepted", nfds,
        self.maxfds + 1))
    end
    if #head ~= HLEN then return fail(self, "malformed frame (bytes after a memfd frame's header)") end
    self.head, self.total, self.nfds, self.memlen = "", 0, nfds, len
    return true
  end
  if magic ~= MAGIC then return fail(self, "malformed frame (bad header)") end
  -- recvmsg takes one descriptor more than maxfds (a memfd frame's memfd):
  -- for other frames, that one is what the kernel would have cut
  if #self.rfds > self.maxfds then return fail(self, "descriptors truncated (more than maxfds sent)") end
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

-- a recvmsg result of the frame in progress: descriptors, header bytes or
-- body bytes. true, or what recv returns on failure.
local function absorb(self, data, fds, info)
  local rfds = self.rfds
  local nr = #fds
  if nr > 0 then
    local base = #rfds
    for i = 1, nr do rfds[base + i] = fds[i] end
    -- one more than maxfds may come: a memfd frame's memfd
    if base + nr > self.maxfds + 1 then return fail(self, "too many descriptors with one frame") end
  end
  if info.ctruncated then return fail(self, "descriptors truncated (more than maxfds sent)") end
  if info.truncated then return fail(self, "record truncated (longer than a frame record)") end
  local total = self.total
  if total and not self.memlen and #rfds > self.maxfds then
    return fail(self, "descriptors truncated (more than maxfds sent)")
  end
  if not total then
    local head = self.head
    head = head == "" and data or head .. data
    if #head < HLEN then
      self.head = head
      return true
    end
    return takeheader(self, head)
  end
  if #data > total - self.have then
    return fail(self, "malformed frame (record longer than its frame)")
  elseif #data > 0 then
    local parts = self.parts
    parts[#parts + 1] = data
    self.have = self.have + #data
  end
  return true
end

-- received descriptors get the class of what they are (an eventfd, a
-- memfd, a pidfd), as core.retype says
local function typefds(fds)
  for i = 1, #fds do
    local o = fds[i]
    if o.recvmsg == nil then retype(o) end
  end
  return fds
end

-- a whole frame: s holds the body from start to its end, fds came with it
-- -> value, fds
local function finish(self, s, start, fds, nfds)
  local nr = #fds
  if nr ~= nfds then
    closefds(fds)
    return fail(self, format("frame announced %d descriptors but %d came with it", nfds, nr))
  end
  local ok, value = pcall(decode, s, start)
  if not ok then
    closefds(fds)
    return fail(self, "malformed frame (" .. tostring(value) .. ")")
  end
  if nr > 0 then typefds(fds) end
  return value, fds
end

-- a whole memfd frame: its body is the last of fds, len bytes, trusted
-- only once sealed against writing, growing and shrinking (_memfdbody
-- checks) -> value, fds
local function finishmemfd(self, fds, nfds, len)
  local nr = #fds
  if nr ~= nfds then
    closefds(fds)
    return fail(self, format("frame announced %d descriptors but %d came with it", nfds, nr))
  end
  local m = fds[nr]
  fds[nr] = nil
  local v, isvalue, err = memfdbody(m, len)
  m:close()
  if v == nil then
    closefds(fds)
    return fail(self, isvalue, err)
  end
  if isvalue then
    if nr > 1 then typefds(fds) end
    return v, fds
  end
  return finish(self, v, 1, fds, nr - 1)
end

-- recv() -> value, fds | nil, msg, errno. "eof" at a clean end of stream;
-- a timeout keeps the partial frame for the next call.
function Channel:recv()
  local sock = self.sock
  if not sock then error("attempt to use a closed channel", 2) end
  local seq = self.seq
  if self.total == nil and self.head == "" and self.rfds[1] == nil then
    -- a new frame. Common case: the header (stream) or the whole frame
    -- (seqpacket, one record) in one recvmsg, then (stream) the body in one
    -- recv; anything else goes on through absorb and the loop below
    local data, fds, info = sock:recvmsg(seq and self.rrecord or self.rhead)
    if not data then return nil, fds, info end -- nothing of a frame was read
    local nd, nr = #data, #fds
    if nd >= HLEN and not info.ctruncated and not info.truncated then
      local magic, nfds, len = MAGIC, 0, nd == HLEN and hdrlen[data]
      if not len then
        magic, nfds, len = unpack(HEADER, data)
        if magic == MAGIC and nfds == 0 and len <= HCACHE and nd == HLEN then
          hdrenc[len], hdrlen[data] = data, len
        end
      end
      if magic == MEMFD and nd == HLEN and nfds == nr and nfds >= 1 and nfds - 1 <= self.maxfds
        and len <= self.maxsize then
        return finishmemfd(self, fds, nfds, len)
      elseif magic == MAGIC and nfds == nr and nfds <= self.maxfds and len <= self.maxsize then
        if seq then
          if nd == HLEN + len then return finish(self, data, HLEN + 1, fds, nfds) end
        elseif len > 0 and len <= CHUNK then
          local body, m, e = sock:recv(len)
          if body and #body == len then return finish(self, body, 1, fds, nfds) end
          -- the body comes in pieces, or later: keep what came
          local rfds = self.rfds
          for i = 1, nr do rfds[i] = fds[i] end
          self.total, self.nfds = len, nfds
          if not body then
            if m == "eof" then return fail(self, "end of stream in the middle of a frame") end
            return nil, m, e
          end
          self.parts[1], self.have = body, #body
          data = nil
        end
      end
    end
    if data then
      local ok, m, e = absorb(self, data, fds, info)
      if not ok then return ok, m, e end
    end
  end
  local ropts, parts = self.ropts, self.parts
  while true do
    local total, want = self.total
    if total then
      want = total - self.have
      if want == 0 then break end
    else
      want = HLEN - #self.head
    end
    local data, fds, info
    if total and not seq then
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
      ropts.size = seq and RECORDMAX or (want < CHUNK and want or CHUNK)
      data, fds, info = sock:recvmsg(ropts)
    end
    if not data then
      if fds == "eof" then return fail(self, "end of stream in the middle of a frame") end
      return nil, fds, info
    end
    do
      local ok, m, e = absorb(self, data, fds, info)
      if not ok then return ok, m, e end
    end
    ::continue::
  end
  local rfds = self.rfds
  local got = {}
  for i = 1, #rfds do got[i], rfds[i] = rfds[i], nil end
  local memlen = self.memlen
  if memlen then
    local nfds = self.nfds
    resetframe(self)
    return finishmemfd(self, got, nfds, memlen)
  end
  local s, nfds = parts[2] == nil and parts[1] or concat(parts), self.nfds
  resetframe(self)
  return finish(self, s, 1, got, nfds)
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

local OPTIONS = { maxsize = true, maxfds = true, memfd = true }

local function channel(sock, opts)
  local mt = type(sock) == "userdata" and getmetatable(sock)
  if not mt or mt.__name ~= "unixipc.socket" then
    error("bad argument #1 to 'channel' (unixipc socket expected, got " .. type(sock) .. ")", 2)
  end
  opts = check.options(opts, 2, "channel", OPTIONS, 2)
  local memfd = opts.memfd
  if memfd == nil or memfd == true then
    memfd = DEFAULT_MEMFD
  elseif memfd ~= false and (mtype(memfd) ~= "integer" or memfd < 0 or memfd > 0xffffffff) then
    error("bad argument #2 to 'channel' (option 'memfd' must be a size in bytes from 0 to 4294967295 "
      .. "or a boolean, got " .. (mtype(memfd) and tostring(memfd) or type(memfd)) .. ")", 2)
  end
  local kind = sock:getoption("type")
  if kind ~= "stream" and kind ~= "seqpacket" then
    error("bad argument #1 to 'channel' (stream or seqpacket socket expected, got " .. tostring(kind) .. ")", 2)
  end
  local maxfds = check.int(opts.maxfds, "maxfds", 0, SCM_MAX_FD, 2, "channel", 2) or SCM_MAX_FD
  -- descriptors asked of recvmsg: one more than maxfds, a memfd frame's memfd
  local rfds = maxfds < SCM_MAX_FD and maxfds + 1 or SCM_MAX_FD
  -- memfd frames over unix sockets only (an inet socket carries no descriptor)
  local addr = sock:getsockname()
  if not addr or addr.family ~= "unix" or not sealedmemfd then memfd = false end
  local self = {
    sock = sock,
    seq = kind == "seqpacket",
    maxsize = check.int(opts.maxsize, "maxsize", 0, 0xffffffff, 2, "channel", 2) or DEFAULT_MAXSIZE,
    maxfds = maxfds,
    memfd = memfd,
    rhead = { size = HLEN, maxfds = rfds },     -- a stream frame's header
    rrecord = { size = RECORDMAX, maxfds = rfds }, -- a seqpacket record
    ropts = { size = HLEN, maxfds = rfds },     -- the rest of a frame
    rfds = {},
    parts = {},
  }
  resetframe(self)
  return setmetatable(self, Channel)
end

return function(ipc)
  ipc.channel = channel
  return ipc
end
