-- A prefork keep-alive HTTP/1.1 server on unixipc.server: each worker
-- serves up to CONCURRENCY connections at once (unixipc.loop, one task per
-- connection) with a handler written in plain blocking style. Every
-- request gets "hello from pid N", N being the worker that served it.
--
--   lua5.4 examples/prefork_http.lua PORT [shared|passfd] [CONCURRENCY] [WORKERS]
--       serve on PORT until Ctrl-C (TERM: graceful stop, HUP: new workers,
--       USR2: upgrade in place, TTIN/TTOU: one worker more/less)
--   lua5.4 examples/prefork_http.lua
--       demo: serve on a free port, open 20 keep-alive connections at once,
--       send 3 requests on each, then stop with SIGTERM
local ipc = require "unixipc"
local server = require "unixipc.server"

local WORKERS, CONCURRENCY = 3, 64
local IDLE = 30       -- seconds a keep-alive connection may stay idle
local MAXHEAD = 8192  -- bytes of request line + headers

local function respond(conn, status, body, keep, head)
  return conn:sendall(("HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
    .. "Connection: %s\r\n\r\n%s"):format(status, #body, keep and "keep-alive" or "close",
    head and "" or body))
end

-- one connection: requests one after another until the client closes, asks
-- to close, idles for IDLE seconds, or the worker is told to finish
local function handler(conn)
  conn:settimeout(IDLE)
  local buf = ""
  while true do
    local e = buf:find("\r\n\r\n", 1, true)
    while not e do
      if #buf > MAXHEAD then
        respond(conn, "431 Request Header Fields Too Large", "request head too large\n", false)
        return
      end
      local data = conn:recv(4096)
      if not data then return end -- end of stream, idle timeout or error: nothing to answer
      buf = buf .. data
      e = buf:find("\r\n\r\n", 1, true)
    end
    local head = buf:sub(1, e + 1)
    buf = buf:sub(e + 4)
    local method, path, minor = head:match("^(%u+) (%S+) HTTP/1%.(%d)\r\n")
    local connection = (head:match("\r\n[Cc]onnection:[ \t]*([^\r]*)") or ""):lower()
    local length = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength:[ \t]*(%d+)") or 0)
    local keep = minor == "1" and connection ~= "close" or connection == "keep-alive"
    if server.stopping() then keep = false end -- HUP, TERM, upgrade: finish with this request
    if length > 0 then -- a body we do not use: read it off the connection
      while #buf < length do
        local data = conn:recv(math.min(65536, length - #buf))
        if not data then return end
        buf = buf .. data
      end
      buf = buf:sub(length + 1)
    end
    if not method then
      respond(conn, "400 Bad Request", "bad request\n", false)
      return
    elseif method ~= "GET" and method ~= "HEAD" then
      if not respond(conn, "405 Method Not Allowed", "only GET and HEAD\n", keep) or not keep then return end
    else
      local ok = respond(conn, "200 OK", ("hello from pid %d\n"):format(ipc.getpid()), keep, method == "HEAD")
      if path == "/crash" then error("asked to crash") end -- logged; the connection closes, the worker goes on
      if not ok or not keep then return end
    end
  end
end

-- the demo's client: n keep-alive connections open at once, r requests on
-- each, taken in turns; then TERM to the server
local function client(chan, n, r)
  local port = chan:recv()
  local conns, served, workers = {}, {}, {}
  for i = 1, n do
    conns[i] = assert(ipc.connect({ family = "inet", host = "127.0.0.1", port = port }))
    conns[i]:settimeout(5)
  end
  local answered, kept = 0, 0
  for round = 1, r do
    for i, c in ipairs(conns) do
      assert(c:sendall("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
      local text = ""
      repeat
        local data = assert(c:recv(4096))
        text = text .. data
        local e = text:find("\r\n\r\n", 1, true)
        local len = e and tonumber(text:match("Content%-Length: (%d+)"))
      until len and #text >= e + 3 + len
      local status = text:match("^HTTP/1%.1 (%d+)")
      local pid = text:match("hello from pid (%d+)")
      if status == "200" and pid then
        answered = answered + 1
        workers[pid] = true
        if round == 1 then served[i] = pid elseif served[i] == pid then kept = kept + 1 end
      end
    end
  end
  for _, c in ipairs(conns) do c:close() end
  local distinct = 0
  for _ in pairs(workers) do distinct = distinct + 1 end
  print(("%d connections x %d requests: %d answered, by %d worker%s"):format(n, r, answered, distinct,
    distinct == 1 and "" or "s"))
  print(("%d of %d later requests came back on the connection's first worker (keep-alive)"):format(
    kept, n * (r - 1)))
  io.stdout:flush()
  ipc.kill(ipc.getppid(), "TERM")
end

local port, mode = arg[1], arg[2] or "shared"
if port then
  local concurrency, workers = tonumber(arg[3]) or CONCURRENCY, tonumber(arg[4]) or WORKERS
  print(("serving http://127.0.0.1:%s/ with %d workers x %d connections (%s mode); Ctrl-C stops"):format(
    port, workers, concurrency, mode))
  local summary = assert(server.run{ listen = "0.0.0.0:" .. port, workers = workers, mode = mode,
    concurrency = concurrency, handler = handler })
  print(("stopped by SIG%s after %d worker starts"):format(summary.signal, summary.spawned))
  return
end

local c = assert(ipc.spawn(client, 20, 3))
local summary = assert(server.run{
  listen = "127.0.0.1:0", workers = WORKERS, concurrency = CONCURRENCY, handler = handler,
  ready = function(info) c.chan:send(info.port) end,
})
assert(c:wait())
c.chan:close()
print(("server stopped by SIG%s: %d workers started, %d crashed"):format(
  summary.signal, summary.spawned, summary.crashed))
