-- Two children share one socketpair: one sends, the other receives; the
-- parent only waits for both (reference 002, second program, whose parent
-- slept instead of waiting).
--
--   lua5.4 examples/socketpair_two_children.lua
local ipc = require "unixipc"

io.stdout:setvbuf("line") -- several processes share this stdout

local s0, s1 = assert(ipc.socketpair())

-- sender: writes into s1, so it closes s0
local sender = assert(ipc.spawn(function()
  s0:close()
  local msg = "hello"
  print(("sender   %d: sending '%s'"):format(ipc.getpid(), msg))
  assert(s1:sendall(msg .. "\0")) -- with the terminating zero, as the C program did
  s1:close()
end))

-- receiver: reads from s0, so it closes s1; end of stream arrives once
-- every copy of s1 is closed (sender's, parent's and its own)
local receiver = assert(ipc.spawn(function()
  s1:close()
  local got = {}
  while true do
    local data = s0:recv(1024)
    if not data then break end
    got[#got + 1] = data
  end
  s0:close()
  local msg = table.concat(got)
  print(("receiver %d: received %d bytes: '%s'"):format(ipc.getpid(), #msg, (msg:gsub("%z$", ""))))
end))

-- the parent uses neither end
s0:close()
s1:close()
sender.chan:close()
receiver.chan:close()

local ok1 = sender:wait()
local ok2 = receiver:wait()
print(("parent   %d: both children done"):format(ipc.getpid()))
os.exit(ok1 and ok2 and 0 or 1)
