-- Descriptor passing, the sending side: connect to a Unix stream socket,
-- open a file and hand its descriptor over with SCM_RIGHTS.
-- (reference 003: the sendmsg + SCM_RIGHTS sender)
--
--   lua5.4 examples/fdpass_sender.lua SOCKET_PATH FILE
--   -> Sent file descriptor 4
-- Run examples/fdpass_receiver.lua to see both sides at once.
local ipc = require "unixipc"

local path, file = arg[1], arg[2]
if not path or not file then
  io.stderr:write("usage: fdpass_sender.lua SOCKET_PATH FILE\n")
  os.exit(2)
end

local sock = assert(ipc.connect(path, { timeout = 5 }))
local f = assert(ipc.open(file, "r"))

-- a stream socket needs at least one data byte to carry ancillary data
assert(sock:sendmsg{ data = "F", fds = { f } })
print(("Sent file descriptor %d"):format(f:fileno()))

-- the receiver has its own copy now: ours can go
f:close()
sock:close()
