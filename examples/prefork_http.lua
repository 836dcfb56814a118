-- A tiny prefork HTTP/1.0 server on unixipc.server: every request gets
-- "hello from pid N", N being the worker that served it.
--
--   lua5.4 examples/prefork_http.lua 8080 [passfd]   serve on port 8080 until Ctrl-C
--   lua5.4 examples/prefork_http.lua                 demo: serve on a free port, query
--                                                    ourselves, stop with SIGTERM
local ipc = require "unixipc"
local server = require "unixipc.server"

local WORKERS = 3

local function handler(conn)
  conn:settimeout(5) -- a client that never finishes its request does not hold a worker forever
  local req = ""
  while not req:find("\r\n\r\n", 1, true) and #req < 8192 do
    local data = conn:recv(4096)
    if not data then return end -- end of stream, timeout or error: nothing to answer
    req = req .. data
  end
  local method, path = req:match("^(%u+) (%S+) HTTP/%d%.%d\r\n")
  local status, body
  if not method then
    status, body = "400 Bad Request", "bad request\n"
  elseif method ~= "GET" and method ~= "HEAD" then
    status, body = "405 Method Not Allowed", "only GET and HEAD\n"
  else
    status, body = "200 OK", ("hello from pid %d\n"):format(ipc.getpid())
  end
  conn:sendall(("HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
    .. "Connection: close\r\n\r\n%s"):format(status, #body, method == "HEAD" and "" or body))
  if path == "/crash" then error("asked to crash") end -- logged; the worker keeps serving
end

-- the demo's client: N connections open at once (so N different workers
-- hold one each), then one request on each; then TERM to the server
local function client(chan, n)
  local port = chan:recv()
  local conns = {}
  for i = 1, n do conns[i] = assert(ipc.connect({ family = "inet", host = "127.0.0.1", port = port })) end
  local pids = {}
  for i, c in ipairs(conns) do
    assert(c:sendall("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"))
    local reply = {}
    repeat
      local data = c:recv(4096)
      reply[#reply + 1] = data
    until not data
    c:close()
    local text = table.concat(reply)
    local status = text:match("^HTTP/1%.0 (%d+ [^\r]*)")
    local body = text:match("\r\n\r\n(.*)\n$")
    print(("request %d: %s, %s"):format(i, status, body))
    pids[body:match("%d+$")] = true
  end
  local distinct = 0
  for _ in pairs(pids) do distinct = distinct + 1 end
  print(("%d requests served by %d different workers"):format(n, distinct))
  io.stdout:flush()
  ipc.kill(ipc.getppid(), "TERM")
end

local port, mode = arg[1], arg[2] or "shared"
if port then
  print(("serving http://127.0.0.1:%s/ with %d workers (%s mode); Ctrl-C stops"):format(port, WORKERS, mode))
  local summary = assert(server.run{ listen = "0.0.0.0:" .. port, workers = WORKERS, mode = mode,
    handler = handler })
  print(("stopped by SIG%s after %d worker starts"):format(summary.signal, summary.spawned))
  return
end

local c = assert(ipc.spawn(client, WORKERS))
local summary = assert(server.run{
  listen = "127.0.0.1:0", workers = WORKERS, handler = handler,
  ready = function(info) c.chan:send(info.port) end,
})
assert(c:wait())
c.chan:close()
print(("server stopped by SIG%s: %d workers started, %d crashed"):format(
  summary.signal, summary.spawned, summary.crashed))
