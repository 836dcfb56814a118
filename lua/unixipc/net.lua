-- listen() and connect(): resolve an address, try each result, and hand
-- back a ready socket. Pure policy over the C core's socket calls.
local core = require "unixipc.core"

local type, error, ipairs, tostring = type, error, ipairs, tostring
local match, find, sub = string.match, string.find, string.sub

-- the addresses to try for addr: a list of address tables (or strings for
-- unix), and the family of the first one
local function candidates(addr, socktype, passive, fname)
  local t = type(addr)
  if t == "table" then
    -- unix addresses are checked (and may raise) before any socket exists
    if addr.family == "unix" then return { core.address(addr) } end
    local list, msg, err = core.getaddrinfo(addr.host, addr.port,
      { family = addr.family, type = socktype, passive = passive })
    return list, msg, err
  elseif t ~= "string" then
    error(("bad argument #1 to '%s' (address expected: string or table, got %s)"):format(fname, t), 3)
  end
  if sub(addr, 1, 1) == "@" or find(addr, "/", 1, true) then return { core.address(addr) } end
  local host, port = match(addr, "^%[(.-)%]:(.+)$")
  local family
  if host then
    family = "inet6"
  else
    host, port = match(addr, "^([^:]*):([^:]+)$")
    if not host then
      error(("bad argument #1 to '%s' (invalid address '%s': expected a path with '/', '@name', "
        .. "'host:port' or '[v6addr]:port')"):format(fname, addr), 3)
    end
  end
  if host == "" or host == "*" then host = nil end
  return core.getaddrinfo(host, port, { family = family, type = socktype, passive = passive })
end

local function checkopts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #2 to '%s' (options must be a table, got %s)"):format(fname, type(opts)), 3)
  end
  return opts
end

-- listen(addr [, {backlog=, mode=, reuseaddr=, type=, unlink=}]) -> socket
local function listen(addr, opts)
  opts = checkopts(opts, "listen")
  local socktype = opts.type or "stream"
  local list, msg, err = candidates(addr, socktype, true, "listen")
  if not list then return nil, msg, err end
  for _, a in ipairs(list) do
    local fam = a.family
    local s, m, e = core.socket(fam, socktype)
    if not s then return nil, m, e end
    local ok = true
    if fam ~= "unix" and opts.reuseaddr ~= false then
      ok, m, e = s:setoption("reuseaddr", true)
    end
    if ok and opts.ipv6only ~= nil and fam == "inet6" then
      ok, m, e = s:setoption("ipv6only", opts.ipv6only)
    end
    local path = a.path
    if ok and path and opts.unlink then
      core.unlink(path) -- a stale socket file from an earlier run
    end
    if ok then ok, m, e = s:bind(a) end
    if ok and path and opts.mode then ok, m, e = core.chmod(path, opts.mode) end
    if ok and socktype ~= "dgram" then ok, m, e = s:listen(opts.backlog) end
    if ok then return s end
    s:close()
    msg, err = m, e
  end
  return nil, msg or "listen: no address", err
end

-- connect(addr [, {timeout=, type=}]) -> socket, trying each resolved address
local function connect(addr, opts)
  opts = checkopts(opts, "connect")
  local socktype = opts.type or "stream"
  local timeout = opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #2 to 'connect' (opts.timeout must be a non-negative number)", 2)
  end
  local list, msg, err = candidates(addr, socktype, false, "connect")
  if not list then return nil, msg, err end
  local deadline = timeout and core.monotime() + timeout
  for _, a in ipairs(list) do
    local s, m, e = core.socket(a.family, socktype)
    if not s then return nil, m, e end
    if deadline then
      local left = deadline - core.monotime()
      if left < 0 then left = 0 end
      s:settimeout(left)
    end
    local ok
    ok, m, e = s:connect(a)
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
