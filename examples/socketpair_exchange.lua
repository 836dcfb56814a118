-- A bidirectional parent/child exchange over a socketpair (reference 004,
-- TLPI 57.5), with ipc.spawn: the child gets its end as `chan`, the parent
-- keeps the other as p.chan; spawn closes the unused ends on both sides.
--
--   lua5.4 examples/socketpair_exchange.lua
--   -> Child received: Hello from parent
--   -> Parent received: Hello from child
local ipc = require "unixipc"

io.stdout:setvbuf("line") -- parent and child share this stdout

-- one message either way; p.chan is a channel when the channel layer is
-- loaded, else the raw stream socket
local function receive(chan)
  if ipc.channel then return (chan:recv()) end
  return chan:recv(100)
end

local p = assert(ipc.spawn(function(chan)
  print("Child received: " .. assert(receive(chan)))
  assert(chan:send("Hello from child"))
end))

assert(p.chan:send("Hello from parent"))
print("Parent received: " .. assert(receive(p.chan)))
p.chan:close()

local ok, how, code = p:wait()
if not ok then
  io.stderr:write(("child failed: %s %d\n"):format(how, code))
  os.exit(1)
end
