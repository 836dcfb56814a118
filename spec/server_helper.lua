-- What the server specs share: a server.run started in a spawned child
-- (its workers are grandchildren of the test), announcing its address
-- through ready() and stopped with a real signal; the child then reports
-- run()'s result, leaked descriptors and whether the signal state came back.
-- Clients speak a line protocol to the handler below.
local ipc = require "unixipc"
local core = require "unixipc.core"
local server = require "unixipc.server"
local assert = require "luassert"

local M = {}

local ESRCH = ipc.errno.ESRCH

-- the test protocol, one message per recv: "hello" -> the worker's pid;
-- "stopping?" -> "yes" or "no" (server.stopping()); "boom" -> an error;
-- "spin" -> a loop that never yields; "block" -> a recv that never ends;
-- "bye" -> "ok", and the handler returns. A worker holding a connection in
-- classic mode is busy, so n clients holding theirs are n different workers.
function M.handler(conn)
  while true do
    local line = conn:recv(100)
    if not line then return end
    if line:find("boom", 1, true) then error("boom requested") end
    if line:find("spin", 1, true) then
      local x = 0
      while true do x = x + 1 end
    end
    if line:find("block", 1, true) then
      conn:recv(100)
      return
    end
    if line:find("bye", 1, true) then
      conn:sendall("ok\n")
      return
    end
    if line:find("stopping?", 1, true) then
      conn:sendall(server.stopping() and "yes\n" or "no\n")
    else
      conn:sendall(ipc.getpid() .. "\n")
    end
  end
end

local SIGNALS = { "CHLD", "TERM", "INT", "HUP", "USR2", "TTIN", "TTOU" }
M.SIGNALS = SIGNALS

-- start server.run(opts) in a child; -> proc, ready info
function M.start(opts)
  local p = assert(ipc.spawn(function(chan)
    local before = core._openfds()
    opts.ready = function(info) chan:send(info) end
    if opts.log == nil then opts.log = false end
    local res, msg, err = server.run(opts)
    local leaks = {}
    for fd in pairs(core._openfds()) do
      if not before[fd] then leaks[#leaks + 1] = fd end
    end
    local bridge = ipc.signalfd(SIGNALS) -- raises if run left its own
    bridge:close()
    chan:send({ result = res, msg = msg, err = err, leaks = leaks })
  end))
  p.chan:settimeout(10)
  local info, e = p.chan:recv()
  if type(info) ~= "table" then
    p:close(0.1)
    error("server did not become ready: " .. tostring(e))
  end
  p.chan:settimeout(30)
  return p, info
end

-- a signal (TERM by default, 0 for none), then run()'s report; the server
-- process must exit 0
function M.stop(p, sig)
  if sig ~= 0 then assert(p:kill(sig or "TERM")) end
  local report, e = p.chan:recv()
  assert(p:wait())
  p.chan:close()
  assert.is_table(report, tostring(e))
  assert.same({}, report.leaks)
  return report.result, report
end

function M.connect(info, addr)
  local c = assert(ipc.connect(addr or info.address, { timeout = 5 }))
  c:settimeout(10)
  return c
end

-- send a line, read the answer
function M.ask(c, line)
  local ok, msg = c:sendall(line)
  if not ok then return nil, msg end
  return c:recv(100)
end

-- n clients at once, each held open until all have their answer; -> list of
-- the pids that served them, or nil, why
function M.clients(info, n, addr)
  local conns, pids = {}, {}
  local function done(...)
    for _, c in ipairs(conns) do c:close() end
    return ...
  end
  for i = 1, n do
    local c, msg = ipc.connect(addr or info.address, { timeout = 5 })
    if not c then return done(nil, msg) end
    conns[i] = c
    c:settimeout(10)
  end
  for _, c in ipairs(conns) do
    local ok, msg = c:sendall("hello")
    if not ok then return done(nil, msg) end
  end
  for i, c in ipairs(conns) do
    local line, msg = c:recv(100)
    if not line then return done(nil, "client " .. i .. ": " .. tostring(msg)) end
    pids[i] = tonumber(line:match("^(%d+)\n$"))
  end
  for _, c in ipairs(conns) do
    if not c:sendall("bye") or c:recv(100) ~= "ok\n" then return done(nil, "no ok") end
  end
  return done(pids)
end

-- how many distinct values, and the set of them
function M.distinct(list)
  local set, n = {}, 0
  for _, v in ipairs(list) do
    if not set[v] then set[v], n = true, n + 1 end
  end
  return n, set
end

-- per value, how often
function M.counts(list)
  local c = {}
  for _, v in ipairs(list) do c[v] = (c[v] or 0) + 1 end
  return c
end

-- the process is gone, or a zombie left to whoever reaps orphans here
function M.gone(pid)
  local ok, _, err = ipc.kill(pid, 0)
  if not ok and err == ESRCH then return true end
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local state = (f:read("l") or ""):match("^%d+ %b() (%S)")
  f:close()
  return state == "Z" or state == "X"
end

function M.allgone(pids)
  for _, pid in pairs(pids) do
    if pid and not M.gone(pid) then return false end
  end
  return true
end

-- retry fn until it returns a truthy value, for at most secs
function M.eventually(secs, fn)
  local deadline = ipc.monotime() + secs
  repeat
    local v = fn()
    if v then return v end
    ipc.sleep(0.02)
  until ipc.monotime() > deadline
  return fn()
end

-- a log function writing to a file, and a reader of that file
function M.logfile(path)
  return function(msg)
    local f = assert(io.open(path, "a"))
    f:write(msg, "\n")
    f:close()
  end, function()
    local f = io.open(path)
    if not f then return "" end
    local s = f:read("a")
    f:close()
    return s
  end
end

return M
