-- libFuzzer driver (b): the address parser, strings and tables.
--
-- ipc.address(string | table), getaddrinfo(host, service, hints),
-- getnameinfo(addr, opts), and bind/getsockname on abstract names (no
-- file is created). Resolution is numeric (fuzz/target.c). Properties:
--  - a unix address that parses gives a table whose tostring() parses back
--    to the same table (abstract names with any bytes, NULs included);
--  - an abstract name bound is the name getsockname() reports;
--  - nothing but a Lua error or nil, msg, code comes back from bad input.
local ipc = require "unixipc"
local R = require "reader"

local function finding(fmt, ...) error("FINDING: " .. fmt:format(...), 0) end

local DICT = { "@", "/", "./", "/tmp/x.sock", "[", "]", ":", "[::1]:", "127.0.0.1:", "localhost:",
  "*:", "0.0.0.0:", "::", "::1", "fe80::1%lo", "80", "0", "65535", "65536", "-1", "http", "\0",
  "unix", "inet", "inet6", "local", "unspec", "1.2.3.4", "255.255.255.255", "[::ffff:1.2.3.4]:1" }
local FAMILIES = { "unix", "inet", "inet6", "local", "unspec", "UNIX", "bogus", "", 1, true }
local KEYS = { "family", "path", "abstract", "host", "port", "type", "passive", "canonname",
  "numeric", "dgram", "unnamed", "scope" }

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k, v in pairs(b) do if a[k] ~= v then return false end end
  return true
end

local function roundtrip(a)
  if type(a) ~= "table" or a.family ~= "unix" or a.unnamed then return end
  -- KNOWN BUG 2 (spec/hardening_found_spec.lua): a relative path with no
  -- "/" or starting with "@" has no string form yet; tostring gives the
  -- bare path, which is no address or an abstract name
  if a.path and (not a.path:find("/", 1, true) or a.path:sub(1, 1) == "@") then return end
  local s = tostring(a)
  local ok, b = pcall(ipc.address, s)
  if not ok then finding("tostring %q of a parsed address does not parse: %s", s, tostring(b)) end
  if not same(a, b) then finding("address %q parses back differently", s) end
end

local function addrtable(r)
  local t = { family = r:pick(FAMILIES) }
  for _ = 1, r:below(4) do t[r:pick(KEYS)] = r:value(DICT, 3) end
  return t
end

return function(data)
  local r = R.new(data)
  local mode = r:below(6)
  if mode == 0 then
    local s = r:str(DICT)
    local ok, a = pcall(ipc.address, s)
    if ok and a ~= nil then roundtrip(a) end
  elseif mode == 1 then
    local ok, a = pcall(ipc.address, addrtable(r))
    if ok and a ~= nil then roundtrip(a) end
  elseif mode == 2 then
    local hints
    if r:bit() then
      hints = {}
      for _ = 1, r:below(5) do hints[r:pick(KEYS)] = r:value(DICT, 3) end
    end
    local host = r:bit() and r:str(DICT) or r:value(DICT, 3)
    local serv = r:bit() and r:str(DICT) or r:value(DICT, 3)
    local ok, list = pcall(ipc.getaddrinfo, host, serv, hints)
    if ok and list then
      for _, a in ipairs(list) do
        local okp, b = pcall(ipc.address, tostring(a))
        if not okp or not b then finding("getaddrinfo result %q does not parse: %s", tostring(a), tostring(b)) end
      end
    end
  elseif mode == 3 then
    local a = r:bit() and r:str(DICT) or addrtable(r)
    local opts = r:bit() and { numeric = r:bit(), dgram = r:bit() } or r:value(DICT, 3)
    pcall(ipc.getnameinfo, a, opts)
  elseif mode == 4 then
    -- bind an abstract name (dgram: nothing else to set up) and read it back
    local name = r:bytes(r:len(110))
    local s = assert(ipc.socket("unix", "dgram"))
    local ok, res = pcall(s.bind, s, "@" .. name)
    if ok and res then
      local got = s:getsockname()
      if got.abstract ~= name then
        s:close()
        finding("bound @%q, getsockname says %q", name, tostring(got.abstract))
      end
    end
    s:close()
  else
    -- an address where a socket takes one: connect/sendto on a unix
    -- dgram socket (abstract names only: no path on this machine is hit)
    local s = assert(ipc.socket(r:pick({ "unix", "inet", "inet6" }), "dgram"))
    local a = r:bit() and ("@" .. r:bytes(r:len(120))) or addrtable(r)
    if type(a) == "table" then
      if a.family == "inet" or a.family == "inet6" then a.host = r:pick({ "127.0.0.1", "::1", "::", nil }) end
      if a.path ~= nil then a.path = nil; a.abstract = r:bytes(r:len(120)) end
    end
    pcall(s.connect, s, a)
    s:close()
  end
end
