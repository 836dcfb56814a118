-- ruptime over TCP, the fork + dup2 + exec way (reference 001, after APUE
-- 16.6): for each connection the server forks a child that puts the
-- connected socket on its stdout and stderr and execs uptime, so the
-- program writes straight to the client. The server here serves `count`
-- connections on 127.0.0.1 and ends, so the example finishes on its own.
--
--   lua5.4 examples/ruptimed.lua [count [program [args...]]]
--   lua5.4 examples/ruptimed.lua --daemon   -- the server as a real daemon
local ipc = require "unixipc"

local daemon = arg[1] == "--daemon"
if daemon then table.remove(arg, 1) end
local count = tonumber(arg[1] or "1") or error("usage: ruptimed.lua [--daemon] [count [program [args...]]]")
local program = arg[2] or "uptime"
local args = { table.unpack(arg, 3) }

-- the service: one child per connection, the program's output goes down
-- the socket; the parent only closes its copy and reaps the child
local function serve(listener, n)
  for _ = 1, n do
    local conn = assert(listener:accept())
    local pid = assert(ipc.fork())
    if pid == 0 then
      listener:close()
      ipc.dup2(conn, 1) -- dup2'd descriptors are not close-on-exec:
      ipc.dup2(conn, 2) -- uptime inherits them as its stdout and stderr
      conn:close()      -- (and conn itself is close-on-exec anyway)
      local _, msg = ipc.exec(program, args)
      io.stderr:write("ruptimed: ", msg, "\n") -- goes to the client
      io.stderr:flush()
      ipc._exit(127)
    end
    conn:close()
    ipc.waitpid(pid)
  end
  listener:close()
end

-- listen before starting the server, so the client never races it
local listener = assert(ipc.listen("127.0.0.1:0"))
local addr = tostring(listener:getsockname())

local server
if daemon then
  -- APUE's ruptimed daemonizes; exit = false keeps this process going as
  -- the client. The daemon serves and ends; it is no child of ours.
  local pid = assert(ipc.daemonize { exit = false })
  if pid == 0 then
    serve(listener, count)
    ipc._exit(0)
  end
else
  server = assert(ipc.spawn(function() serve(listener, count) end))
  server.chan:close()
end
listener:close()

-- the client (ruptime): connect, print everything until end of stream
for i = 1, count do
  local conn = assert(ipc.connect(addr, { timeout = 5 }))
  local out = {}
  while true do
    local data, msg = conn:recv(128)
    if not data then
      if msg ~= "eof" then error(msg) end
      break
    end
    out[#out + 1] = data
  end
  conn:close()
  io.write(count > 1 and ("%d: "):format(i) or "", table.concat(out))
end

if server then
  local ok, how, code = server:wait()
  if not ok then error(("server ended with %s %d"):format(how, code)) end
end
