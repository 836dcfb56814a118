-- UDP with sendmsg and recvmsg (reference 002): the client gathers its
-- message from several buffers (sendmsg's iovec list: data = {...}) and
-- sends it to the server's address (msg_name: to = addr); the server
-- scatters what arrives over several buffers (recvmsg's iovec list:
-- size = {...}), prints each buffer, and answers the sender's address
-- (info.from). Both ends finish on their own.
--
--   lua5.4 examples/udp_sendmsg.lua
local ipc = require "unixipc"

-- the server: bound to a free port on the loopback
local srv = assert(ipc.socket("inet", "dgram"))
assert(srv:bind("127.0.0.1:0"))
local addr = srv:getsockname()

local server = assert(ipc.spawn(function()
  -- three buffers: 7 bytes, 8 bytes, and room for the rest
  local parts, _, info = assert(srv:recvmsg { size = { 7, 8, 256 } })
  local n = #parts[1] + #parts[2] + #parts[3]
  print(("server: %d bytes from %s"):format(n, tostring(info.from)))
  for i, p in ipairs(parts) do print(("server: buffer %d: %q"):format(i, p)) end
  assert(srv:sendmsg { data = { "got ", tostring(n), " bytes" }, to = info.from })
  srv:close()
end))
server.chan:close()
srv:close()

-- the client: an unbound UDP socket (the kernel gives it a port on sendmsg)
local c = assert(ipc.socket("inet", "dgram"))
c:settimeout(5)
local sent = assert(c:sendmsg { data = { "Hello, ", "sendmsg", "! (gathered)" }, to = addr })
print(("client: sent %d bytes from 3 buffers"):format(sent))
local reply = assert(c:recvmsg())
print(("client: server says %q"):format(reply))
c:close()
assert(server:wait())
