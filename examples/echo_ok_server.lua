-- A TCP server that answers every message with "ok" (after the notes'
-- echo-ok server), and a client that sends three messages and closes.
local ipc = require "unixipc"

local srv = assert(ipc.listen("127.0.0.1:0"))
local addr = srv:getsockname()
print("listening on " .. tostring(addr))

local client = ipc.spawn(function()
  srv:close()
  local c = assert(ipc.connect(addr))
  for i = 1, 3 do
    assert(c:sendall("message " .. i))
    print("client got: " .. assert(c:recv(100)))
  end
  c:close()
end)

local conn, peer = assert(srv:accept())
print("connection from " .. tostring(peer))
while true do
  local msg, why = conn:recv(1024)
  if not msg then
    print("client left (" .. why .. ")")
    break
  end
  print("server got: " .. msg)
  assert(conn:sendall("ok"))
end
conn:close()
srv:close()
assert(client:wait())
