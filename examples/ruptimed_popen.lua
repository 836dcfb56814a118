-- ruptime over TCP, the popen way (reference 001, after APUE 16.6, the
-- first ruptimed): for each connection the server runs uptime with
-- ipc.popen, reads its output through the pipe and sends it to the client
-- line by line, as the C version's popen/fgets/send loop does. A program
-- that cannot be run is reported to the client ("error: ..."), as the C
-- version sends strerror(errno): popen returns that failure, it does not
-- hide it in a child exiting 127. The server serves `count` connections
-- on 127.0.0.1 and ends, so the example finishes on its own.
--
--   lua5.4 examples/ruptimed_popen.lua [count [program [args...]]]
local ipc = require "unixipc"

local count = tonumber(arg[1] or "1") or error("usage: ruptimed_popen.lua [count [program [args...]]]")
local argv = { arg[2] or "uptime", table.unpack(arg, 3) }

local function serve(listener, n)
  for _ = 1, n do
    local conn = assert(listener:accept())
    local c, msg = ipc.popen(argv, { stdout = "pipe", stdin = false })
    if not c then
      conn:sendall(("error: %s\n"):format(msg))
    else
      while true do -- the fgets/send loop: whatever the pipe has, to the client
        local data = c.stdout:read(128)
        if not data then break end
        conn:sendall(data)
      end
      c.stdout:close()
      c:wait() -- pclose
    end
    conn:close()
  end
  listener:close()
end

-- listen before starting the server, so the client never races it
local listener = assert(ipc.listen("127.0.0.1:0"))
local addr = tostring(listener:getsockname())
local server = assert(ipc.spawn(function() serve(listener, count) end))
server.chan:close()
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

local ok, how, code = server:wait()
if not ok then error(("server ended with %s %d"):format(how, code)) end
