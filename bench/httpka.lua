-- The unixipc server of the "http keep-alive, many connections" loop:
-- server.run with 2 workers serving up to CONCURRENCY connections each
-- (unixipc.loop, one task per connection), the handler in blocking style
-- with a request buffer, as examples/prefork_http.lua has it.
-- lua5.4 bench/httpka.lua PORTFILE [WORKERS [CONCURRENCY [MODE]]]: writes its
-- port, then the master's and the workers' pids, to PORTFILE once ready;
-- bench/run.lua stops them with TERM by pid.
local server = require "unixipc.server"

local portfile = arg[1]
local workers, concurrency = tonumber(arg[2] or "2"), tonumber(arg[3] or "1024")
local mode = arg[4] or "shared"
local reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
  .. "Hello, world\n"
local find, sub = string.find, string.sub

local function handler(conn)
  local buf = ""
  while true do
    local data = conn:recv(8192)
    if not data then return end
    buf = buf .. data
    local i, n = 1, 0
    while true do
      local _, e = find(buf, "\r\n\r\n", i, true)
      if not e then break end
      n, i = n + 1, e + 1
    end
    if n > 0 then
      buf = sub(buf, i)
      if not conn:sendall(n == 1 and reply or reply:rep(n)) then return end
    end
  end
end

server.run({
  listen = "127.0.0.1:0", workers = workers, concurrency = concurrency, mode = mode,
  handler = handler,
  ready = function(info)
    local pids = { info.pid }
    for _, pid in ipairs(info.pids) do pids[#pids + 1] = pid end
    local f = assert(io.open(portfile, "w"))
    f:write(info.port, "\n", table.concat(pids, " "), "\n")
    f:close()
  end,
})
