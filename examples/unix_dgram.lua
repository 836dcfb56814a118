-- Unix-domain datagram server and client: the client binds its own path
-- so the server can answer with sendto to the address recvfrom gave it.
local ipc = require "unixipc"

local base = os.tmpname()
os.remove(base)
local spath, cpath = base .. ".server", base .. ".client"

local srv = assert(ipc.listen(spath, { type = "dgram" }))
local server = ipc.spawn(function()
  for _ = 1, 2 do
    local msg, from = assert(srv:recvfrom(255))
    print(("server got %q from %s"):format(msg, tostring(from)))
    assert(srv:sendto(msg:upper(), from))
  end
  srv:close()
end)
srv:close()

local c = ipc.socket("unix", "dgram")
assert(c:bind(cpath))
c:settimeout(5)
for _, text in ipairs { "first datagram", "second datagram" } do
  assert(c:sendto(text, spath))
  local reply, from = assert(c:recvfrom(255))
  print(("client got %q from %s"):format(reply, tostring(from)))
end
c:close()
assert(server:wait())
ipc.unlink(spath)
ipc.unlink(cpath)
