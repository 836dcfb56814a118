-- socketpair across fork: the child writes, the parent reads.
-- (reference 000: the classic socketpair + fork program)
--
--   lua5.4 examples/socketpair_fork.lua
--   -> Received in parent: Hello from child
local ipc = require "unixipc"

local parent_end, child_end = assert(ipc.socketpair())

local pid = assert(ipc.fork())
if pid == 0 then
  -- the child: keep one end, write, and leave with _exit (no atexit
  -- handlers, no second flush of anything the parent had buffered)
  parent_end:close()
  child_end:sendall("Hello from child")
  child_end:close()
  ipc._exit(0)
end

-- the parent: close the child's end, so end of stream comes when the child
-- closes its own
child_end:close()
local msg = assert(parent_end:recv(100))
print("Received in parent: " .. msg)
parent_end:close()

local _, how, code = ipc.waitpid(pid)
if how ~= "exit" or code ~= 0 then
  io.stderr:write(("child ended badly: %s %d\n"):format(how, code))
  os.exit(1)
end
