-- A socketpair inside one process: what goes in one end comes out of the
-- other, in both directions (reference 002, first program).
--
--   lua5.4 examples/socketpair_local.lua
local ipc = require "unixipc"

local a, b = assert(ipc.socketpair())

local text = "SOCKET PAIR TEST"
local n = assert(a:send(text))
print("Read result : " .. assert(b:recv(n)))

-- full duplex: the other way round works too
assert(b:sendall("and back"))
print("Read result : " .. assert(a:recv(100)))

a:close()
b:close()
