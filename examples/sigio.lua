-- Signal-driven I/O: O_ASYNC on a socketpair, SIGIO through a descriptor.
--
-- The parent asks the kernel to signal it (F_SETOWN + O_ASYNC) whenever its
-- end of a socketpair becomes readable, and bridges SIGIO and SIGCHLD to
-- one descriptor. A forked child writes three messages, a little apart,
-- then exits. The parent sleeps in sig:read() only: each SIGIO says "read
-- what is there" (signals coalesce, so it reads until EAGAIN), and SIGCHLD
-- says "reap" (in a loop too, for the same reason).
local ipc = require "unixipc"

local mine, theirs = assert(ipc.socketpair())
local sig = assert(ipc.signalfd({ "IO", "CHLD" }))
-- owner and O_ASYNC belong to the open file, so set them before the child
-- can write: nothing it sends goes unsignalled
assert(mine:setowner())           -- F_SETOWN: signal this process
assert(mine:setasync(true, "IO")) -- O_ASYNC; F_SETSIG so the kernel names the fd
assert(mine:setnonblocking(true)) -- drain without blocking

local pid = assert(ipc.fork())
if pid == 0 then
  local ok = pcall(function()
    ipc._sigreset() -- the child does not want the parent's bridge
    mine:close()
    for i = 1, 3 do
      assert(theirs:sendall(("message %d"):format(i)))
      ipc.poll({}, 0.02)
    end
    theirs:close()
  end)
  ipc._exit(ok and 0 or 1)
end
theirs:close()

local eof, reaped, status = false, false, nil
while not (eof and reaped) do
  local info = assert(sig:read(5))
  if info.name == "IO" then
    print(("SIGIO for fd %s"):format(info.fd == mine:fileno() and "mine" or tostring(info.fd)))
    while true do
      local data, msg, err = mine:recv(100)
      if data then
        print(("read '%s'"):format(data))
      elseif msg == "eof" then
        eof = true
        break
      else
        assert(err == ipc.errno.EAGAIN, msg)
        break
      end
    end
  elseif info.name == "CHLD" then
    for _, c in ipairs(ipc.reap()) do
      print(("child ended: %s %d"):format(c.how, c.code))
      reaped, status = true, c.code
    end
  end
end

-- SIGIO's default action ends the process: stop async I/O before the bridge goes
mine:close()
sig:close()
os.exit(status == 0 and 0 or 1)
