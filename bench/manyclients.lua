-- How long until every client of a keep-alive server is answered: the
-- issue's "20 keep-alive clients, each one request, all answered within 1
-- second" (and 1,000 of them), measured here rather than asserted in a
-- spec. server.run with the default 4 workers and concurrency 256 (the
-- MODE argument: shared or passfd); each client opens its connection, then
-- all send one request, then all answers are read while every connection
-- is still held open.
--   lua5.4 bench/manyclients.lua [MODE [CLIENTS ...]]   (default: shared 20 1000)
local ipc = require "unixipc"
local server = require "unixipc.server"

local mode = arg[1] or "shared"
local counts = {}
for i = 2, #arg do counts[#counts + 1] = tonumber(arg[i]) end
if #counts == 0 then counts = { 20, 1000 } end

local function handler(conn)
  local buf = ""
  while true do
    local data = conn:recv(4096)
    if not data then return end
    buf = buf .. data
    local e = buf:find("\r\n\r\n", 1, true)
    if e then
      buf = buf:sub(e + 4)
      local body = ("hello from pid %d\n"):format(ipc.getpid())
      if not conn:sendall(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"):format(#body, body)) then return end
    end
  end
end

local function clients(port, n)
  local t0 = ipc.monotime()
  local conns, errors, answered, pids = {}, 0, 0, {}
  for i = 1, n do
    local c = ipc.connect({ family = "inet", host = "127.0.0.1", port = port }, { timeout = 10 })
    if c then c:settimeout(10) conns[#conns + 1] = c else errors = errors + 1 end
  end
  for _, c in ipairs(conns) do
    if not c:sendall("GET / HTTP/1.1\r\nHost: bench\r\n\r\n") then errors = errors + 1 end
  end
  for _, c in ipairs(conns) do
    local text = ""
    repeat
      local data = c:recv(4096)
      if data then text = text .. data end
    until not data or text:find("\n", text:find("\r\n\r\n", 1, true) or #text + 1, true)
    local pid = text:match("hello from pid (%d+)")
    if pid then answered, pids[pid] = answered + 1, true else errors = errors + 1 end
  end
  local t = ipc.monotime() - t0
  for _, c in ipairs(conns) do c:close() end
  local w = 0
  for _ in pairs(pids) do w = w + 1 end
  return t, answered, errors, w
end

local p = assert(ipc.spawn(function(chan)
  local port = chan:recv()
  for _, n in ipairs(counts) do
    local t, answered, errors, w = clients(port, n)
    print(("%s mode, 4 workers x 256: %4d keep-alive clients, one request each: %d answered, %d errors, "
      .. "%.3f s from the first connect to the last answer, %d workers served"):format(
      mode, n, answered, errors, t, w))
    io.stdout:flush()
  end
  ipc.kill(ipc.getppid(), "TERM")
end))
server.run({ listen = "127.0.0.1:0", concurrency = 256, mode = mode, handler = handler, log = false,
  ready = function(info) p.chan:send(info.port) end })
p:wait()
p.chan:close()
