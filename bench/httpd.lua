-- A tiny prefork HTTP server for the wrk loop: ipc.listen + fork workers
-- sharing the listener, keep-alive, a fixed reply per request.
-- lua5.4 bench/httpd.lua PORTFILE [WORKERS]: writes its port, then its pid
-- and its workers' pids, to PORTFILE; bench/run.lua stops them by pid.
-- (Requests are counted per recv: wrk sends each request in one write.)
local ipc = require "unixipc"

local portfile, workers = arg[1], tonumber(arg[2] or "4")
local srv = assert(ipc.listen("127.0.0.1:0", { backlog = 128 }))
local reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
  .. "Hello, world\n"
local find = string.find

local function serve(conn)
  while true do
    local data = conn:recv(8192)
    if not data then break end
    local i = 1
    while true do
      local _, e = find(data, "\r\n\r\n", i, true)
      if not e then break end
      if not conn:sendall(reply) then break end
      i = e + 1
    end
  end
  conn:close()
end

local pids = { ipc.getpid() }
for _ = 1, workers do
  local pid = assert(ipc.fork())
  if pid == 0 then
    pcall(function()
      while true do
        local conn = srv:accept()
        if conn then serve(conn) end
      end
    end)
    ipc._exit(1)
  end
  pids[#pids + 1] = pid
end

local f = assert(io.open(portfile, "w"))
f:write(srv:getsockname().port, "\n", table.concat(pids, " "), "\n")
f:close()
while ipc.waitpid(-1) do end
