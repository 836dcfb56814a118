-- check/soak.lua (make soak, not run by CI): the prefork server under load,
-- in two phases, each with its own server.run{} process on loopback
-- (shared listener, accept lock):
--
--   prefork    SOAK_WORKERS (16) classic workers (concurrency 1) and
--              SOAK_CLIENTS (200) concurrent clients, each a non-blocking
--              state machine that connects, makes 1 to 8 requests on the
--              connection ("PING id" -> "PONG id", after the worker's
--              "HELLO pid" greeting) and starts over;
--   keepalive  SOAK_KA_WORKERS (2) workers with concurrency
--              SOAK_KA_CONCURRENCY (1024), holding SOAK_KA_CLIENTS (2000)
--              keep-alive clients: each keeps its connection for the whole
--              phase and makes a request every 0 to 200 ms on it.
--
-- Clients run in SOAK_PROCS (4) client processes, for SOAK_SECONDS (20)
-- per phase (SOAK_PHASES="prefork keepalive" picks). Halfway, one worker
-- is killed with SIGKILL. A phase fails when
--   - a request fails (reset, early end, wrong answer, no answer in 10 s)
--     other than on the connections the killed worker held (one for a
--     classic worker, all of its tasks' for a worker with concurrency),
--     or more requests are lost with it than it held connections;
--   - the killed worker is not replaced;
--   - the master or a worker that lived through the soak holds more
--     descriptors afterwards, or grew its VmRSS by more than
--     SOAK_RSS_SLACK_KB (default 1024 for prefork, 4096 for keepalive,
--     whose workers run a thousand tasks: allocator noise, not a leak).
-- Descriptors and VmRSS are read from /proc when the server is idle:
-- after a warm-up round and after the soak. The keepalive phase needs
-- about 2,100 descriptors per worker: `make soak` raises the soft limit.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("UNIXIPC_BUILD") or "build") .. "/?.so;" .. package.cpath
local ipc = require "unixipc"
local server = require "unixipc.server"

local PROCS = tonumber(os.getenv("SOAK_PROCS")) or 4
local SECONDS = tonumber(os.getenv("SOAK_SECONDS")) or 20
local REQTIMEOUT = 10

local PHASES = {
  prefork = {
    workers = tonumber(os.getenv("SOAK_WORKERS")) or 16, concurrency = 1,
    clients = tonumber(os.getenv("SOAK_CLIENTS")) or 200, keepalive = false,
    slack = tonumber(os.getenv("SOAK_RSS_SLACK_KB")) or 1024,
  },
  keepalive = {
    workers = tonumber(os.getenv("SOAK_KA_WORKERS")) or 2,
    concurrency = tonumber(os.getenv("SOAK_KA_CONCURRENCY")) or 1024,
    clients = tonumber(os.getenv("SOAK_KA_CLIENTS")) or 2000, keepalive = true, think = 0.2,
    slack = tonumber(os.getenv("SOAK_RSS_SLACK_KB")) or 4096,
  },
}
local ORDER = {}
for name in (os.getenv("SOAK_PHASES") or "prefork keepalive"):gmatch("%S+") do
  assert(PHASES[name], "SOAK_PHASES: unknown phase " .. name)
  ORDER[#ORDER + 1] = name
end

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

-- the server of a phase: its master's pid, the pipe it reports on, its address
local function startserver(ph)
  local info_r, info_w = ipc.pipe()
  local master = child(function()
    info_r:close()
    local summary = server.run {
      listen = "127.0.0.1:0", workers = ph.workers, concurrency = ph.concurrency, backlog = 4096,
      handler = handler, grace = 2,
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
  return master, info_r, "127.0.0.1:" .. port
end

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

local function workers(master)
  local f = io.open(("/proc/%d/task/%d/children"):format(master, master))
  local list = {}
  if f then
    for pid in f:read("a"):gmatch("%d+") do list[#list + 1] = tonumber(pid) end
    f:close()
  end
  table.sort(list)
  return list
end

local function snapshot(master)
  local s = { master = { fds = nfds(master), rss = rss(master) }, workers = {} }
  for _, pid in ipairs(workers(master)) do s.workers[pid] = { fds = nfds(pid), rss = rss(pid) } end
  return s
end

-- ---- the clients -----------------------------------------------------------

-- one client process: n concurrent connections until the deadline; writes
-- "stats ok failed conns" and one "failed pid pending reason" line per
-- failure. A keep-alive client keeps its connection (and makes a request
-- every 0 to think seconds); the others make 1 to 8 requests and start over.
local function clients(addr, ph, n, deadline, out, tag)
  local slots, ok, failed, conns = {}, 0, 0, 0
  local fails = {}
  local seq = 0
  local function fail(slot, why)
    failed = failed + (slot.pending and 1 or 0)
    fails[#fails + 1] = ("failed %s %d %s"):format(tostring(slot.pid or "none"), slot.pending and 1 or 0, why)
    slot.sock:close()
    slot.sock = nil
  end
  local function send(slot)
    seq = seq + 1
    slot.pending = ("%s-%d"):format(tag, seq)
    slot.since, slot.nextat = ipc.monotime(), nil
    local r, msg = slot.sock:send("PING " .. slot.pending .. "\n")
    if not r then fail(slot, "send: " .. tostring(msg)) end
  end
  local function start(slot)
    local s = assert(ipc.socket("inet", "stream", { nonblock = true }))
    local r, msg, err = s:connect(addr)
    slot.sock, slot.buf, slot.pid, slot.nextat = s, "", nil, nil
    slot.left = ph.keepalive and math.huge or math.random(1, 8)
    slot.connecting = not r and err == ipc.errno.EINPROGRESS
    if not r and not slot.connecting then fail(slot, "connect: " .. tostring(msg)); return end
    conns = conns + 1
    slot.pending, slot.since = nil, ipc.monotime()
    if not slot.connecting then send(slot) end
  end
  for i = 1, n do slots[i] = {}; start(slots[i]) end
  while ipc.monotime() < deadline do
    local set = {}
    local now = ipc.monotime()
    local wake = 0.2
    for _, slot in ipairs(slots) do
      if not slot.sock then start(slot) end
      if slot.sock and slot.nextat and not slot.connecting then
        if slot.nextat <= now then send(slot) else wake = math.min(wake, slot.nextat - now) end
      end
      if slot.sock then set[slot.sock] = slot.connecting and "w" or "r" end
    end
    local ready = ipc.poll(set, wake)
    now = ipc.monotime()
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
                if slot.left == 0 then s:close(); slot.sock = nil
                elseif ph.think then slot.nextat, slot.since = now + math.random() * ph.think, now
                else send(slot) end
              else
                fail(slot, "wrong answer: " .. l)
              end
            end
          end
        end
      elseif s and (slot.pending or slot.connecting) and now - slot.since > REQTIMEOUT then
        fail(slot, "no answer in " .. REQTIMEOUT .. " s")
      end
    end
  end
  for _, slot in ipairs(slots) do if slot.sock then slot.sock:close() end end
  -- requests cut by the deadline are not failures
  out:write(("stats %d %d %d\n"):format(ok, failed, conns))
  for _, f in ipairs(fails) do out:write(f .. "\n") end
end

local function load(addr, ph, seconds, tagbase)
  local deadline = ipc.monotime() + seconds
  local pipes, pids = {}, {}
  for p = 1, PROCS do
    local r, w = ipc.pipe()
    local n = ph.clients // PROCS + (p <= ph.clients % PROCS and 1 or 0)
    pids[p] = child(function()
      r:close()
      math.randomseed(p)
      clients(addr, ph, n, deadline, w, tagbase .. p)
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

-- ---- a phase -------------------------------------------------------------------

local problems = {}

local function phase(name, ph)
  local say = function(fmt, ...) print(("soak %s: " .. fmt):format(name, ...)) end
  local function problem(fmt, ...) problems[#problems + 1] = name .. ": " .. fmt:format(...) end
  local master, info_r, addr = startserver(ph)
  local ok, err = pcall(function()
    -- warm-up: every worker has served, lazy allocations are done
    local wp, wr = load(addr, ph, 3, "w")
    collect(wp, wr)
    ipc.sleep(0.5)
    local before = snapshot(master)
    local nworkers = #workers(master)
    if nworkers ~= ph.workers then problem("%d workers up, not %d", nworkers, ph.workers) end

    local t0 = ipc.monotime()
    local pids, pipes = load(addr, ph, SECONDS, "s")
    -- halfway: one worker gets SIGKILL
    ipc.sleep(SECONDS / 2)
    local victims = workers(master)
    local victim = victims[math.random(#victims)]
    local held = nfds(victim) - before.workers[victim].fds -- its connections, about
    local holding = 0 -- connections the workers hold now, about
    for _, pid in ipairs(victims) do holding = holding + nfds(pid) - (before.workers[pid] or { fds = 0 }).fds end
    say("at %.1f s the workers hold %d connections", ipc.monotime() - t0, holding)
    if ph.keepalive and holding < ph.clients then problem("only %d of %d keep-alive clients held at once", holding, ph.clients) end
    ipc.kill(victim, "KILL")
    local killedat = ipc.monotime() - t0
    local replaced, replacement
    local deadline = ipc.monotime() + 5
    repeat
      ipc.sleep(0.02)
      local now = workers(master)
      local present = false
      for _, pid in ipairs(now) do if pid == victim then present = true end end
      if not present and #now == ph.workers then
        replaced = ipc.monotime() - t0 - killedat
        for _, pid in ipairs(now) do if not before.workers[pid] then replacement = pid end end
      end
    until replaced or ipc.monotime() > deadline
    local total = collect(pids, pipes)
    local elapsed = ipc.monotime() - t0
    ipc.sleep(0.5)
    local after = snapshot(master)

    -- failures: only the killed worker's connections may lose a request,
    -- at most one each
    local own, ownconns, others = 0, 0, {}
    for _, f in ipairs(total.fails) do
      local pid, n, why = f:match("^failed (%S+) (%d+) (.*)$")
      if pid == tostring(victim) or pid == "none" then own, ownconns = own + tonumber(n), ownconns + 1
      else others[#others + 1] = f end
      if pid == "none" then say("a connection failed before its greeting (%s)", why) end
    end
    say("%d workers, concurrency %d, %d %sclients for %.1f s: %d requests (%.0f/s) over %d connections, %d failed",
      ph.workers, ph.concurrency, ph.clients, ph.keepalive and "keep-alive " or "", elapsed, total.ok,
      total.ok / elapsed, total.conns, total.failed)
    say("worker %d (about %d connections) killed (SIGKILL) at %.1f s; %s; %d connection(s) of its own failed, %d request(s) lost with them, %d failures elsewhere",
      victim, held, killedat, replaced and ("replaced by %s in %.2f s"):format(tostring(replacement), replaced) or "NOT replaced",
      ownconns, own, #others)
    for i, f in ipairs(others) do if i <= 20 then say("  %s", f) end end
    if #others > 0 then problem("%d failures beyond the killed worker's connections", #others) end
    if own > ownconns then problem("%d requests lost over %d connections of the killed worker", own, ownconns) end
    if ph.concurrency == 1 and own > 1 then problem("%d requests lost with one classic worker (it serves one connection)", own) end
    if not replaced then problem("the killed worker was not replaced") end
    if total.ok == 0 then problem("no request succeeded") end

    say("master fds %d -> %d, VmRSS %d -> %d KiB", before.master.fds, after.master.fds,
      before.master.rss, after.master.rss)
    if after.master.fds > before.master.fds then problem("the master holds more descriptors") end
    if after.master.rss - before.master.rss > ph.slack then problem("the master's VmRSS grew by %d KiB", after.master.rss - before.master.rss) end
    local n, maxgrow, fdsb, fdsa = 0, -math.huge, {}, {}
    for pid, b in pairs(before.workers) do
      local a = after.workers[pid]
      if a then
        n = n + 1
        fdsb[b.fds] = true
        fdsa[a.fds] = true
        if a.rss - b.rss > maxgrow then maxgrow = a.rss - b.rss end
        if a.fds > b.fds then problem("worker %d holds %d descriptors, had %d", pid, a.fds, b.fds) end
        if a.rss - b.rss > ph.slack then problem("worker %d grew by %d KiB", pid, a.rss - b.rss) end
      end
    end
    local function keys(t) local l = {} for k in pairs(t) do l[#l + 1] = k end table.sort(l) return table.concat(l, "/") end
    local rsss = {}
    for _, w in pairs(after.workers) do rsss[#rsss + 1] = w.rss end
    table.sort(rsss)
    say("%d workers lived through it: fds %s -> %s, largest VmRSS growth %d KiB (slack %d); worker VmRSS now %s KiB",
      n, keys(fdsb), keys(fdsa), maxgrow, ph.slack, table.concat(rsss, "/"))
    if replacement and after.workers[replacement] then
      say("the replacement holds %d descriptors, VmRSS %d KiB", after.workers[replacement].fds,
        after.workers[replacement].rss)
    end
  end)
  ipc.kill(master, "TERM")
  local summary = info_r:read(200) or ""
  info_r:close()
  local _, how, code = ipc.waitpid(master)
  say("server %s, ended %s %s", summary:match("summary ([^\n]*)") or "gave no summary", tostring(how), tostring(code))
  if not ok then problems[#problems + 1] = name .. ": soak error: " .. tostring(err) end
end

-- ---- the run ---------------------------------------------------------------------

local function fdlimit()
  local p = io.popen("ulimit -n")
  local n = tonumber(p:read("l"))
  p:close()
  return n
end

for _, name in ipairs(ORDER) do
  local ph = PHASES[name]
  local need = ph.concurrency * 1 + 64
  local lim = fdlimit()
  if ph.concurrency > 1 and lim and lim < need then
    problems[#problems + 1] = ("%s: RLIMIT_NOFILE is %d, a worker needs about %d (ulimit -n %d)"):format(
      name, lim, need, need * 2)
  else
    phase(name, ph)
  end
end
if #problems > 0 then
  for _, p in ipairs(problems) do print("soak: FAIL: " .. p) end
  os.exit(1)
end
print("soak: ok")
