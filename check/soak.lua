-- check/soak.lua (make soak, not run by CI): the prefork server under load.
--
-- A server.run{} process (shared listener, accept lock, SOAK_WORKERS
-- workers, default 16) on loopback; SOAK_CLIENTS (200) concurrent clients
-- in SOAK_PROCS (4) client processes, each client a non-blocking state
-- machine that connects, makes 1 to 8 requests on the connection
-- ("PING id" -> "PONG id", after the worker's "HELLO pid" greeting) and
-- starts over, for SOAK_SECONDS (20). Halfway, one worker is killed with
-- SIGKILL. The part fails when
--   - a request fails (reset, early end, wrong answer, no answer in 10 s)
--     other than on the one connection the killed worker held (a worker
--     serves one connection at a time);
--   - the killed worker is not replaced;
--   - the master or a worker that lived through the soak holds more
--     descriptors afterwards, or grew its VmRSS by more than
--     SOAK_RSS_SLACK_KB (default 1024: allocator noise, not a leak).
-- Descriptors and VmRSS are read from /proc when the server is idle:
-- after a warm-up round and after the soak.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("UNIXIPC_BUILD") or "build") .. "/?.so;" .. package.cpath
local ipc = require "unixipc"
local server = require "unixipc.server"

local CLIENTS = tonumber(os.getenv("SOAK_CLIENTS")) or 200
local PROCS = tonumber(os.getenv("SOAK_PROCS")) or 4
local WORKERS = tonumber(os.getenv("SOAK_WORKERS")) or 16
local SECONDS = tonumber(os.getenv("SOAK_SECONDS")) or 20
local SLACK = tonumber(os.getenv("SOAK_RSS_SLACK_KB")) or 1024
local REQTIMEOUT = 10

local function child(fn)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok, err = pcall(fn)
    if not ok then io.stderr:write("soak child: ", tostring(err), "\n") end
    io.stdout:flush()
    ipc._exit(ok and 0 or 1)
  end
  return pid
end

-- ---- the server ------------------------------------------------------------

local function handler(conn)
  conn:settimeout(REQTIMEOUT)
  assert(conn:sendall("HELLO " .. ipc.getpid() .. "\n"))
  local buf = ""
  while true do
    local data = conn:recv(4096)
    if not data then return end
    buf = buf .. data
    while true do
      local line, rest = buf:match("^([^\n]*)\n(.*)$")
      if not line then break end
      buf = rest
      local id = line:match("^PING (.+)$")
      if not id then return end
      if not conn:sendall("PONG " .. id .. "\n") then return end
    end
  end
end

local info_r, info_w = ipc.pipe()
local master = child(function()
  info_r:close()
  local summary = server.run {
    listen = "127.0.0.1:0", workers = WORKERS, backlog = 1024, handler = handler, grace = 2,
    log = function(msg) io.stderr:write("soak server: ", msg, "\n") end,
    ready = function(info) info_w:write(("port %d\n"):format(info.port)) end,
  }
  info_w:write(("summary spawned=%d respawned=%d crashed=%d\n"):format(
    summary.spawned, summary.respawned, summary.crashed))
  info_w:close()
end)
info_w:close()
local line = assert(info_r:read(100), "the server did not start")
local port = assert(tonumber(line:match("port (%d+)")), line)
local addr = "127.0.0.1:" .. port

-- ---- /proc ---------------------------------------------------------------------

local function nfds(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("l"))
  p:close()
  return n
end

local function rss(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local kb = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kb
end

local function workers()
  local f = io.open(("/proc/%d/task/%d/children"):format(master, master))
  local list = {}
  if f then
    for pid in f:read("a"):gmatch("%d+") do list[#list + 1] = tonumber(pid) end
    f:close()
  end
  table.sort(list)
  return list
end

local function snapshot()
  local s = { master = { fds = nfds(master), rss = rss(master) }, workers = {} }
  for _, pid in ipairs(workers()) do s.workers[pid] = { fds = nfds(pid), rss = rss(pid) } end
  return s
end

-- ---- the clients -----------------------------------------------------------

-- one client process: n concurrent connections until the deadline; writes
-- "stats ok failed conns" and one "failed pid reason" line per failure
local function clients(n, deadline, out, tag)
  local slots, ok, failed, conns = {}, 0, 0, 0
  local fails = {}
  local seq = 0
  local function fail(slot, why)
    failed = failed + (slot.pending and 1 or 0)
    fails[#fails + 1] = ("failed %s %d %s"):format(tostring(slot.pid or "none"), slot.pending and 1 or 0, why)
    slot.sock:close()
    slot.sock = nil
  end
  local function start(slot)
    local s = assert(ipc.socket("inet", "stream", { nonblock = true }))
    local r, msg, err = s:connect(addr)
    slot.sock, slot.buf, slot.pid, slot.left = s, "", nil, math.random(1, 8)
    slot.connecting = not r and err == ipc.errno.EINPROGRESS
    if not r and not slot.connecting then fail(slot, "connect: " .. tostring(msg)); return end
    conns = conns + 1
    slot.pending, slot.since = nil, ipc.monotime()
  end
  local function send(slot)
    seq = seq + 1
    slot.pending = ("%s-%d"):format(tag, seq)
    slot.since = ipc.monotime()
    local r, msg = slot.sock:send("PING " .. slot.pending .. "\n")
    if not r then fail(slot, "send: " .. tostring(msg)) end
  end
  for i = 1, n do slots[i] = {}; start(slots[i]) end
  for _, slot in ipairs(slots) do if slot.sock and not slot.connecting then send(slot) end end
  while ipc.monotime() < deadline do
    local set = {}
    for _, slot in ipairs(slots) do
      if not slot.sock then start(slot); if slot.sock and not slot.connecting then send(slot) end end
      if slot.sock then set[slot.sock] = slot.connecting and "w" or "r" end
    end
    local ready = ipc.poll(set, 0.2)
    local now = ipc.monotime()
    for _, slot in ipairs(slots) do
      local s = slot.sock
      if s and ready[s] then
        if slot.connecting then
          local e = s:getoption("error")
          if e ~= 0 then fail(slot, "connect: " .. ipc.strerror(e))
          else slot.connecting = false; send(slot) end
        else
          local data, msg = s:recv(4096)
          if not data then
            fail(slot, "recv: " .. tostring(msg))
          else
            slot.buf = slot.buf .. data
            while slot.sock do
              local l, rest = slot.buf:match("^([^\n]*)\n(.*)$")
              if not l then break end
              slot.buf = rest
              local pid = l:match("^HELLO (%d+)$")
              if pid then
                slot.pid = tonumber(pid)
              elseif l == "PONG " .. tostring(slot.pending) then
                ok = ok + 1
                slot.pending = nil
                slot.left = slot.left - 1
                if slot.left == 0 then s:close(); slot.sock = nil else send(slot) end
              else
                fail(slot, "wrong answer: " .. l)
              end
            end
          end
        end
      elseif s and now - slot.since > REQTIMEOUT then
        fail(slot, "no answer in " .. REQTIMEOUT .. " s")
      end
    end
  end
  for _, slot in ipairs(slots) do if slot.sock then slot.sock:close() end end
  -- requests cut by the deadline are not failures
  out:write(("stats %d %d %d\n"):format(ok, failed, conns))
  for _, f in ipairs(fails) do out:write(f, "\n") end
end

local function load(seconds, tagbase)
  local deadline = ipc.monotime() + seconds
  local pipes, pids = {}, {}
  for p = 1, PROCS do
    local r, w = ipc.pipe()
    local n = CLIENTS // PROCS + (p <= CLIENTS % PROCS and 1 or 0)
    pids[p] = child(function()
      r:close()
      math.randomseed(p)
      clients(n, deadline, w, tagbase .. p)
      w:close()
    end)
    w:close()
    pipes[p] = r
  end
  return pids, pipes
end

local function collect(pids, pipes)
  local total = { ok = 0, failed = 0, conns = 0, fails = {} }
  for p, r in ipairs(pipes) do
    local text = {}
    while true do
      local s = r:read(65536)
      if not s then break end
      text[#text + 1] = s
    end
    r:close()
    ipc.waitpid(pids[p])
    for l in table.concat(text):gmatch("[^\n]+") do
      local ok, failed, conns = l:match("^stats (%d+) (%d+) (%d+)$")
      if ok then
        total.ok, total.failed, total.conns = total.ok + ok, total.failed + failed, total.conns + conns
      elseif l:match("^failed ") then
        total.fails[#total.fails + 1] = l
      end
    end
  end
  return total
end

-- ---- the run ---------------------------------------------------------------------

local function stop()
  ipc.kill(master, "TERM")
  local summary = info_r:read(200) or ""
  info_r:close()
  local _, how, code = ipc.waitpid(master)
  return summary, how, code
end

local problems = {}
local ok, err = pcall(function()
  -- warm-up: every worker has served, lazy allocations are done
  local wp, wr = load(2, "w")
  collect(wp, wr)
  ipc.sleep(0.5)
  local before = snapshot()
  local nworkers = #workers()
  if nworkers ~= WORKERS then problems[#problems + 1] = ("%d workers up, not %d"):format(nworkers, WORKERS) end

  local t0 = ipc.monotime()
  local pids, pipes = load(SECONDS, "s")
  -- halfway: one worker gets SIGKILL
  ipc.sleep(SECONDS / 2)
  local victims = workers()
  local victim = victims[math.random(#victims)]
  ipc.kill(victim, "KILL")
  local killedat = ipc.monotime() - t0
  local replaced, replacement
  local deadline = ipc.monotime() + 5
  repeat
    ipc.sleep(0.02)
    local now = workers()
    local present = false
    for _, pid in ipairs(now) do if pid == victim then present = true end end
    if not present and #now == WORKERS then
      replaced = ipc.monotime() - t0 - killedat
      for _, pid in ipairs(now) do if not before.workers[pid] then replacement = pid end end
    end
  until replaced or ipc.monotime() > deadline
  local total = collect(pids, pipes)
  local elapsed = ipc.monotime() - t0
  ipc.sleep(0.5)
  local after = snapshot()

  -- failures: only the killed worker's connection may lose a request
  local own, others = 0, {}
  for _, f in ipairs(total.fails) do
    local pid, n, why = f:match("^failed (%S+) (%d+) (.*)$")
    if pid == tostring(victim) or pid == "none" then own = own + tonumber(n)
    else others[#others + 1] = f end
    if pid == "none" then print("soak: a connection failed before its greeting (" .. why .. ")") end
  end
  print(("soak: %d clients for %.1f s: %d requests (%.0f/s) over %d connections, %d failed"):format(
    CLIENTS, elapsed, total.ok, total.ok / elapsed, total.conns, total.failed))
  print(("soak: worker %d killed (SIGKILL) at %.1f s; %s; %d connection(s) of its own failed, %d request(s) lost with it, %d failures elsewhere"):format(
    victim, killedat, replaced and ("replaced by %s in %.2f s"):format(tostring(replacement), replaced) or "NOT replaced",
    #total.fails - #others, own, #others))
  for _, f in ipairs(others) do print("soak:   " .. f) end
  if #others > 0 then problems[#problems + 1] = #others .. " failures beyond the killed worker's connection" end
  if own > 1 then problems[#problems + 1] = own .. " requests lost with one worker (it serves one connection)" end
  if not replaced then problems[#problems + 1] = "the killed worker was not replaced" end
  if total.ok == 0 then problems[#problems + 1] = "no request succeeded" end

  print(("soak: master fds %d -> %d, VmRSS %d -> %d KiB"):format(before.master.fds, after.master.fds,
    before.master.rss, after.master.rss))
  if after.master.fds > before.master.fds then problems[#problems + 1] = "the master holds more descriptors" end
  if after.master.rss - before.master.rss > SLACK then problems[#problems + 1] = "the master's VmRSS grew" end
  local n, maxgrow, fdsb, fdsa = 0, -math.huge, {}, {}
  for pid, b in pairs(before.workers) do
    local a = after.workers[pid]
    if a then
      n = n + 1
      fdsb[b.fds] = true
      fdsa[a.fds] = true
      if a.rss - b.rss > maxgrow then maxgrow = a.rss - b.rss end
      if a.fds > b.fds then problems[#problems + 1] = ("worker %d holds %d descriptors, had %d"):format(pid, a.fds, b.fds) end
      if a.rss - b.rss > SLACK then problems[#problems + 1] = ("worker %d grew by %d KiB"):format(pid, a.rss - b.rss) end
    end
  end
  local function keys(t) local l = {} for k in pairs(t) do l[#l + 1] = k end table.sort(l) return table.concat(l, "/") end
  print(("soak: %d workers lived through it: fds %s -> %s, largest VmRSS growth %d KiB (slack %d)"):format(
    n, keys(fdsb), keys(fdsa), maxgrow, SLACK))
  if replacement and after.workers[replacement] then
    print(("soak: the replacement holds %d descriptors, VmRSS %d KiB"):format(
      after.workers[replacement].fds, after.workers[replacement].rss))
  end
end)
local summary, how, code = stop()
print("soak: server " .. (summary:match("summary ([^\n]*)") or "gave no summary") .. ", ended " .. tostring(how) .. " " .. tostring(code))
if not ok then problems[#problems + 1] = "soak error: " .. tostring(err) end
if #problems > 0 then
  for _, p in ipairs(problems) do print("soak: FAIL: " .. p) end
  os.exit(1)
end
print("soak: ok")
