-- An HTTP server run the way a service manager runs it: socket activation,
-- readiness, reload, upgrade in place. Every answer names the worker and
-- its master: "hello from pid W (master M)".
--
--   systemd-socket-activate -l 8080 -l /tmp/app.sock lua5.4 examples/systemd_http.lua
--       serve on the sockets systemd (here its socket-activate tool) passes
--   lua5.4 examples/systemd_http.lua [options] ADDRESS ...
--       serve on these addresses, e.g. 127.0.0.1:8080 /tmp/app.sock
--   lua5.4 examples/systemd_http.lua
--       demo: start itself under systemd-socket-activate on a free port and
--       a unix path, query both, upgrade itself (USR2), query again, stop
--
-- options: --workers N, --concurrency N, --pidfile FILE, --timeout SECONDS
-- signals: TERM/INT stop gracefully, HUP replaces the workers, USR2
-- upgrades (a new master from this same command line takes the sockets
-- over), TTIN/TTOU add/remove one worker.
local ipc = require "unixipc"
local server = require "unixipc.server"

local function handler(conn)
  conn:settimeout(30)
  local buf = ""
  while true do
    local e = buf:find("\r\n\r\n", 1, true)
    while not e do
      if #buf > 8192 then return end
      local data = conn:recv(4096)
      if not data then return end
      buf = buf .. data
      e = buf:find("\r\n\r\n", 1, true)
    end
    local head = buf:sub(1, e + 1)
    buf = buf:sub(e + 4)
    local minor = head:match("^%u+ %S+ HTTP/1%.(%d)\r\n")
    if not minor then return end
    local connection = (head:match("\r\n[Cc]onnection:[ \t]*([^\r]*)") or ""):lower()
    local keep = (minor == "1" and connection ~= "close" or connection == "keep-alive")
      and not server.stopping()
    local body = ("hello from pid %d (master %d)\n"):format(ipc.getpid(), ipc.getppid())
    local ok = conn:sendall(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
      .. "Connection: %s\r\n\r\n%s"):format(#body, keep and "keep-alive" or "close", body))
    if not ok or not keep then return end
  end
end

-- ---- the demo ----------------------------------------------------------------

-- one GET over a fresh connection: the body, or nil, why
local function get(addr)
  local c, msg = ipc.connect(addr, { timeout = 5 })
  if not c then return nil, msg end
  c:settimeout(5)
  c:sendall("GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
  local reply = {}
  repeat
    local data = c:recv(4096)
    reply[#reply + 1] = data
  until not data
  c:close()
  return table.concat(reply):match("\r\n\r\n(.*)$")
end

local function readpid(path)
  local f = io.open(path)
  if not f then return nil end
  local pid = tonumber(f:read("l") or "")
  f:close()
  return pid
end

local function demo()
  if os.execute("command -v systemd-socket-activate >/dev/null 2>&1") ~= true then
    print("systemd-socket-activate is not installed (Debian package systemd): nothing to show")
    return
  end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
  local path, pidfile = dir .. "/http.sock", dir .. "/http.pid"
  local probe = assert(ipc.listen("127.0.0.1:0"))
  local port = probe:getsockname().port
  probe:close()
  -- the server: systemd-socket-activate binds both sockets and executes
  -- this script (found again through arg[0]) on the first connection
  local cmd = ("exec systemd-socket-activate -l 127.0.0.1:%d -l %s --fdname=web:local "
    .. "-E LUA_PATH -E LUA_CPATH -E ASAN_OPTIONS -E LSAN_OPTIONS -E UBSAN_OPTIONS lua5.4 %s --workers 2 --pidfile %s 2>%s/log"):format(
    port, path, arg[0], pidfile, dir)
  local p = assert(ipc.spawn(function() ipc.exec("/bin/sh", { "-c", cmd }) end))
  local function retry(fn)
    for _ = 1, 500 do
      local v = fn()
      if v then return v end
      ipc.sleep(0.01)
    end
  end
  local body = retry(function() return get("127.0.0.1:" .. port) end)
  print("tcp:  " .. (body and body:gsub("%d+", "N"):gsub("\n$", "") or "no answer"))
  body = retry(function() return get(path) end)
  print("unix: " .. (body and body:gsub("%d+", "N"):gsub("\n$", "") or "no answer"))
  local old = retry(function() return readpid(pidfile) end)
  print("master ready, pid file written: " .. tostring(old == p.pid))
  -- upgrade: the same command line again, taking the sockets over
  ipc.kill(old, "USR2")
  local new = retry(function()
    local pid = readpid(pidfile)
    return pid ~= old and pid
  end)
  print("upgraded: a new master took over: " .. tostring(new ~= nil))
  print("the old master left: " .. tostring(p:wait() == true))
  p.chan:close()
  body = retry(function()
    local b = get("127.0.0.1:" .. port)
    return b and b:find("master " .. tostring(new), 1, true) and b
  end)
  print("tcp after the upgrade, served by the new master's workers: " .. tostring(body ~= nil))
  print("unix path still there: " .. tostring(get(path) ~= nil))
  if new then
    ipc.kill(new, "TERM")
    retry(function() return not readpid(pidfile) end)
  end
  print("stopped, pid file removed: " .. tostring(readpid(pidfile) == nil))
  os.execute("rm -rf " .. dir)
end

-- ---- serving --------------------------------------------------------------------

local opts = { listen = {}, handler = handler, workers = 2, concurrency = 64 }
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--workers" or a == "--concurrency" or a == "--timeout" then
    opts[a:sub(3)] = assert(tonumber(arg[i + 1]), a .. " needs a number")
    i = i + 1
  elseif a == "--pidfile" then
    opts.pidfile = assert(arg[i + 1], "--pidfile needs a path")
    i = i + 1
  else
    opts.listen[#opts.listen + 1] = a
  end
  i = i + 1
end
if #opts.listen == 0 then
  if not os.getenv("LISTEN_FDS") then return demo() end
  opts.listen = "systemd"
end
local summary, msg = server.run(opts)
if not summary then
  io.stderr:write("systemd_http: ", msg, "\n")
  os.exit(1)
end
io.stderr:write(("systemd_http[%d]: stopped by SIG%s%s\n"):format(ipc.getpid(), summary.signal,
  summary.upgraded and (", handed over to pid " .. summary.upgraded) or ""))
