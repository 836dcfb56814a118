-- Unix-domain stream server and client (after the notes' AF_LOCAL stream
-- pair): the client sends a line, the server prints it and answers.
-- Both ends run here: the server in a spawned child, the client in the parent.
local ipc = require "unixipc"

local dir = os.tmpname()
os.remove(dir)
local path = dir .. ".sock"

local srv = assert(ipc.listen(path, { mode = tonumber("600", 8) }))

local server = ipc.spawn(function()
  local conn = assert(srv:accept())
  local msg = assert(conn:recv(255))
  print("server got: " .. msg)
  assert(conn:sendall("hello, client " .. conn:peercred().pid))
  conn:close()
  srv:close()
end)
srv:close() -- the child owns the listener now

local c = assert(ipc.connect(path))
assert(c:sendall("hello, server"))
print("client got: " .. assert(c:recv(255)))
c:close()
assert(server:wait())
ipc.unlink(path)
