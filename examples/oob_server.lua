-- TCP server that reads urgent (out-of-band) data when SIGURG arrives.
--
-- Port of the C server from the reference notes: there, a SIGURG handler
-- calls recv(MSG_OOB) while main() loops on recv(). Here no code runs in a
-- handler: SIGURG is blocked and bridged to a descriptor (ipc.signalfd),
-- and one poll() loop waits on the connection and the bridge together.
-- The socket must have an owner (F_SETOWN) or the kernel sends SIGURG to
-- nobody. The example drives itself: a forked client connects, waits for
-- the server to be ready, sends normal, urgent and normal data, and closes.
local ipc = require "unixipc"

local srv = assert(ipc.listen("127.0.0.1:0"))
local addr = srv:getsockname()
print(("listening on %s"):format(tostring(addr)))

local pid = assert(ipc.fork())
if pid == 0 then
  -- the client: like the book's, "123", then "abc" urgent (only its last
  -- byte, 'c', is out-of-band), then "123" again
  local ok, err = pcall(function()
    srv:close()
    local c = assert(ipc.connect(addr))
    assert(c:setoption("nodelay", true))
    assert(c:recv(5) == "ready") -- the server owns the socket now
    assert(c:send("123"))
    assert(c:send("abc", "oob"))
    assert(c:send("123"))
    c:close()
  end)
  if not ok then io.stderr:write("client: ", tostring(err), "\n") end
  ipc._exit(ok and 0 or 1)
end

local conn = assert(srv:accept())
srv:close()
local sig = assert(ipc.signalfd({ "URG" }))
assert(conn:setowner(ipc.getpid())) -- fcntl(connfd, F_SETOWN, getpid())
assert(conn:sendall("ready"))

local done = false
while not done do
  local ready = ipc.poll({ [conn] = "r", [sig] = "r" })
  if ready[sig] then
    local info = assert(sig:read(0))
    assert(info.name == "URG")
    local data = assert(conn:recv(1023, "oob"))
    print(("got %d bytes of oob data '%s'"):format(#data, data))
  end
  if ready[conn] then
    local data, msg = conn:recv(1023)
    if not data then
      assert(msg == "eof", msg)
      done = true
    else
      print(("got %d bytes of normal data '%s'"):format(#data, data))
    end
  end
end

conn:close()
sig:close()
local _, how, code = ipc.waitpid(pid)
print(("client ended: %s %d"):format(how, code))
os.exit(how == "exit" and code == 0 and 0 or 1)
