-- The UDP flavour of APUE's ruptime: the client sends a datagram and waits
-- for the server's uptime with a receive timeout, retrying a few times
-- because datagrams may be lost. The server answers one request and exits.
local ipc = require "unixipc"

local srv = assert(ipc.listen("127.0.0.1:0", { type = "dgram" }))
local addr = srv:getsockname()

local server = ipc.spawn(function()
  local _, from = assert(srv:recvfrom(1))
  local f = io.popen("uptime")
  local up = f:read("*a")
  f:close()
  assert(srv:sendto(up, from))
  srv:close()
end)
srv:close()

local c = ipc.socket("inet", "dgram")
c:settimeout(1)
for attempt = 1, 3 do
  assert(c:sendto("?", addr))
  local reply, msg = c:recvfrom(4096)
  if reply then
    io.write("uptime: ", reply)
    break
  end
  print(("attempt %d: %s"):format(attempt, msg))
end
c:close()
assert(server:wait())
