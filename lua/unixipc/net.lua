-- listen() and connect(): resolve an address (the C core parses it), try
-- each result, and hand back a ready socket. Policy over the core's
-- socket calls.
local core = require "unixipc.core"
local check = require "unixipc.check"

local ipairs = ipairs
local format = string.format

local errno = core.errno
local ENOENT, EADDRINUSE, ECONNREFUSED, EAGAIN = errno.ENOENT, errno.EADDRINUSE,
  errno.ECONNREFUSED, errno.EAGAIN

-- every address to try, or nil, msg, code; argument errors are fname's,
-- raised at the line that called fname (level 3 from here: not a tail
-- call, so that this frame is there to count)
local function resolve(fname, addr, socktype, passive)
  local list, msg, err = check.call(fname, 3, core._resolve, addr, socktype, passive, fname)
  return list, msg, err
end

local LISTEN = { backlog = true, mode = true, reuseaddr = true, reuseport = true, type = true,
  unlink = true, ipv6only = true }

-- listen{unlink = true}: the path may go only if it is a socket file that
-- nobody answers on (connect is refused): never a regular file, a
-- directory, or a live server's socket
local function clearstale(path)
  local kind, msg, err = core._filetype(path)
  if not kind then
    if err == ENOENT then return true end
    return nil, msg, err
  end
  local busy = format("listen %s: Address already in use", path)
  if kind ~= "socket" then
    local what = kind == "other" and "something that is not a socket" or "a " .. kind
    return nil, busy .. " (by " .. what .. ")", EADDRINUSE
  end
  -- a datagram probe asks without side effects: a live datagram server
  -- takes the connect (nothing is queued), a live stream or seqpacket one
  -- answers EPROTOTYPE (no connection lands in its backlog), and only a
  -- socket file nobody is bound to refuses it
  local probe, m, e = core.socket("unix", "dgram", { nonblock = true })
  if not probe then return nil, m, e end
  local ok
  ok, m, e = probe:connect(path)
  probe:close()
  if ok or e ~= ECONNREFUSED then return nil, busy .. " (a server answers there)", EADDRINUSE end
  ok, m, e = core.unlink(path)
  if not ok and e ~= ENOENT then return nil, m, e end
  return true
end

-- bind a unix socket to path with exactly `mode`: the umask is narrowed
-- around bind, so the file is never more open than that, even for a moment
local function bindmode(s, a, mode)
  if not mode then return s:bind(a) end
  local old = core.umask(0x1ff & ~mode)
  local ok, m, e = s:bind(a)
  core.umask(old)
  return ok, m, e
end

-- listen(addr [, {backlog=, mode=, reuseaddr=, reuseport=, type=, unlink=, ipv6only=}]) -> socket
local function listen(addr, opts)
  opts = check.options(opts, 2, "listen", LISTEN, 2)
  check.int(opts.backlog, "backlog", 0, 0x7fffffff, 2, "listen", 2)
  check.int(opts.mode, "mode", 0, 511, 2, "listen", 2)
  for _, k in ipairs { "reuseaddr", "reuseport", "unlink", "ipv6only" } do
    check.bool(opts[k], k, 2, "listen", 2)
  end
  local socktype = opts.type or "stream"
  local list, msg, err = resolve("listen", addr, socktype, true)
  if not list then return nil, msg, err end
  for _, a in ipairs(list) do
    local fam, path = a.family, a.path
    local s, m, e = core.socket(fam, socktype)
    if not s then return nil, m, e end
    local ok = true
    if fam ~= "unix" and opts.reuseaddr ~= false then ok, m, e = s:setoption("reuseaddr", true) end
    if ok and opts.reuseport then ok, m, e = s:setoption("reuseport", true) end
    if ok and opts.ipv6only ~= nil and fam == "inet6" then
      ok, m, e = s:setoption("ipv6only", opts.ipv6only)
    end
    if ok and path and opts.unlink then ok, m, e = clearstale(path) end
    if ok then
      ok, m, e = bindmode(s, a, path and opts.mode)
      -- unlink = true: the path is ours, and goes when this process closes the socket
      if ok and path and opts.unlink then ok, m, e = core._bound(s, path) end
    end
    if ok and s:getoption("type") ~= "dgram" then
      ok, m, e = s:listen(opts.backlog)
    end
    if ok then return s end
    s:close()
    msg, err = m, e
  end
  return nil, msg or "listen: no address", err
end

local CONNECT = { timeout = true, type = true }

-- connect(addr [, {timeout=, type=}]) -> socket, trying each resolved
-- address; the timeout covers the connection attempts, not name resolution
local function connect(addr, opts)
  opts = check.options(opts, 2, "connect", CONNECT, 2)
  local timeout = check.seconds(opts.timeout, "timeout", 2, "connect", 2)
  local socktype = opts.type or "stream"
  local list, msg, err = resolve("connect", addr, socktype, false)
  if not list then return nil, msg, err end
  local deadline = timeout and core.monotime() + timeout
  for _, a in ipairs(list) do
    local left = deadline and deadline - core.monotime()
    if left and left < 0 then left = 0 end
    local s, m, e = core.socket(a.family, socktype, left and { timeout = left } or nil)
    if not s then return nil, m, e end
    local ok, nap = nil, 0.001
    while true do
      ok, m, e = s:connect(a)
      -- a unix listener's backlog is full: nothing to wait for but time
      if ok or e ~= EAGAIN or a.family ~= "unix" then break end
      left = deadline - core.monotime()
      if left <= 0 then
        ok, m, e = nil, "timeout", errno.ETIMEDOUT
        break
      end
      core.sleep(nap < left and nap or left)
      if nap < 0.01 then nap = nap * 2 end
      s:settimeout(left)
    end
    if ok then
      if deadline then s:settimeout(nil) end
      return s
    end
    s:close()
    msg, err = m, e
    if m == "timeout" then break end
  end
  return nil, msg or "connect: no address", err
end

return function(ipc)
  ipc.listen = listen
  ipc.connect = connect
  return ipc
end
