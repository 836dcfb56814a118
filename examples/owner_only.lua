-- A server that admits only peers of its own uid, by their credentials.
--
-- It listens on an abstract name, where file modes do not apply: any
-- process in the same network namespace can connect (README, Addresses),
-- so the server itself must decide who it talks to. Right after accept it
-- asks the kernel who the peer is (SO_PEERCRED: the credentials the
-- client had when it connected, which it cannot forge) and closes the
-- connection of any other uid with a one-line refusal.
--
-- The demo runs two clients and ends: one of the server's own uid, and --
-- when run as root with setpriv(1) at hand -- one run as nobody.
--
--   lua5.4 examples/owner_only.lua               the demo
--   lua5.4 examples/owner_only.lua --client @n   one client of server @n
local ipc = require "unixipc"

-- this process's real uid ("Uid:" in /proc/self/status)
local function myuid()
  local f = assert(io.open("/proc/self/status"))
  local uid = tonumber(f:read("a"):match("\nUid:%s*(%d+)"))
  f:close()
  return uid
end

-- the client: the server speaks first, with a welcome or a refusal
local function client(name)
  local c, msg = ipc.connect(name)
  if not c then
    print(("client (uid %d): %s"):format(myuid(), msg))
    return
  end
  c:settimeout(10)
  local first = c:recv(200) or "(nothing)\n"
  if first:match("^welcome") then
    assert(c:sendall("hello\n"))
    first = first .. (c:recv(200) or "(nothing)\n")
  end
  print(("client (uid %d): %s"):format(myuid(), (first:gsub("\n$", ""):gsub("\n", "; "))))
  c:close()
end

if arg[1] == "--client" then
  client(arg[2])
  return
end

-- ---- the server ----------------------------------------------------------

local me = myuid()
local name = "@unixipc-owner-only-" .. ipc.getpid()
local srv = assert(ipc.listen(name))
print(("server (uid %d): listening on %s; admits uid %d only"):format(me, name, me))

-- serve one connection: admit it or refuse it by the peer's uid
local function serve(conn)
  local cred = assert(conn:peercred())
  if cred.uid ~= me then
    print(("server: pid %d of uid %d refused"):format(cred.pid, cred.uid))
    conn:sendall(("refused: this server admits uid %d only\n"):format(me))
    conn:close()
    return
  end
  print(("server: pid %d of uid %d admitted"):format(cred.pid, cred.uid))
  conn:settimeout(10)
  conn:sendall(("welcome, uid %d\n"):format(cred.uid))
  local line = conn:recv(200) or ""
  conn:sendall("you said " .. line)
  conn:close()
end

-- the clients, one after the other: one of our uid, and one of nobody's
-- when we may start one
local runs = { { "lua5.4", arg[0], "--client", name } }
if me == 0 and os.execute("command -v setpriv >/dev/null 2>&1") then
  local p = io.popen("id -g nobody 2>/dev/null")
  local gid = p:read("l")
  p:close()
  runs[#runs + 1] = { "setpriv", "--reuid=nobody", "--regid=" .. (gid or "nogroup"), "--clear-groups",
    "lua5.4", arg[0], "--client", name }
else
  print("(no client of another uid: that needs root and setpriv)")
end

srv:settimeout(30)
for _, argv in ipairs(runs) do
  io.stdout:flush()
  local c = assert(ipc.popen(argv))
  serve(assert(srv:accept()))
  assert(c:wait(30))
end
srv:close()
