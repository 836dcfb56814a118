-- bench/run.lua: runs every loop for every implementation, alternating
-- (C, unixipc, LuaSocket, cqueues, Python, C, unixipc, ...) for ROUNDS
-- rounds, and reports the median ops/s and the ratio to C as a table,
-- printed and written to bench/RESULTS.md. Started by bench/run.sh, which
-- builds the C baselines and sets the environment.
--
-- lua5.4 bench/run.lua [loop ...]     (default: every loop)
-- env: BENCH_TIME (seconds per run, default 0.3), BENCH_ROUNDS (default 9, at least 3),
--      BENCH_PYTHON, BENCH_WRK, BENCH_TASKSET, BENCH_TIMEOUTCMD (paths, empty when missing),
--      BENCH_OUT (report file, default bench/RESULTS.md; "-" for none),
--      BENCH_CLOCK=wall (rate by wall-clock time for every loop, see below)
--
-- One-process loops that never block (cpu = true below) are rated by the
-- process's CPU time (user + system): on a shared machine that leaves out
-- the time the process waited for a CPU, which would otherwise land on
-- whichever implementation was running. Loops with two processes or that
-- wait (bulk, ping-pong, fork, http) are rated by wall-clock time.

local getenv = os.getenv
local TIME = tonumber(getenv "BENCH_TIME" or "") or 0.3
local ROUNDS = math.max(3, tonumber(getenv "BENCH_ROUNDS" or "") or 9)
local PYTHON = getenv "BENCH_PYTHON" or ""
local WRK = getenv "BENCH_WRK" or ""
local TASKSET = getenv "BENCH_TASKSET" or ""
local TIMEOUT = getenv "BENCH_TIMEOUTCMD" or "" -- coreutils timeout: a stuck run fails, not the bench
local OUT = getenv "BENCH_OUT" or "bench/RESULTS.md"
local CLOCK = getenv "BENCH_CLOCK" or "" -- "wall": wall-clock time for every loop
local TMP = os.tmpname()

local LOOPS = {
  { name = "sendrecv", what = "64 B send + recv, one process (socketpair)", cpu = true, target = 0.80 },
  { name = "bulk", what = "64 KiB bulk transfer, two processes", unit = "MB/s", scale = 1e-6,
    target = 0.95 },
  { name = "pingpong", what = "64 B ping-pong, two processes (one CPU)", target = 0.90,
    pin = true },
  { name = "fdpass", what = "pass 1 descriptor + recvmsg + close", cpu = true, target = 0.70 },
  { name = "flock", what = "flock lock + unlock", cpu = true, target = 0.70 },
  { name = "fcntl", what = "fcntl record lock + unlock", cpu = true },
  { name = "fork", what = "fork + _exit + waitpid", target = 0.80 },
  { name = "signal", what = "kill self + read through signalfd", cpu = true, target = 0.60 },
  { name = "channel", what = "channel send + recv of a small table", cpu = true },
  { name = "poll", what = "poll 1000 idle descriptors + 1 ready", cpu = true },
  { name = "polltable", what = "the same, the set passed as a table each call (ipc.poll)",
    cpu = true },
  { name = "taskswitch", what = "two tasks ping-pong 1 byte, one process (unixipc.loop)",
    cpu = true },
  { name = "http", what = "prefork HTTP server under wrk (requests/s)", http = true },
  { name = "keepalive", what = "http keep-alive, many connections: wrk -t2 -c1000, 2 processes (requests/s)",
    target = 0.70 },
  -- issue 14
  { name = "popen", what = "popen true: run /bin/true, wait (C: posix_spawn + waitpid)", target = 0.80 },
  { name = "execute", what = "os.execute(\"/bin/true\"), plain Lua (C: system(3))" },
  { name = "pidfd", what = "spawn + wait through the pidfd (C: socketpair, fork, pidfd_open, poll, waitid)" },
  { name = "bigmemfd", what = "channel, 64 MiB value, sealed memfd, two processes (values/s)" },
  { name = "bigsocket", what = "channel, 64 MiB value, socket buffer, two processes (values/s)" },
}

local IMPLS = {
  { name = "C", cmd = "bench/bin/loops" },
  { name = "unixipc", cmd = "lua5.4 bench/unixipc.lua" },
  { name = "LuaSocket", cmd = "lua5.4 bench/luasocket.lua", peer = true },
  { name = "cqueues", cmd = "lua5.4 bench/cqueues.lua", peer = true },
  { name = "Python", cmd = PYTHON ~= "" and (PYTHON .. " bench/python.py") or nil,
    missing = "no python3" },
}

-- http servers: command taking PORTFILE
local HTTPD = {
  C = "bench/bin/loops httpd %s 4",
  unixipc = "lua5.4 bench/httpd.lua %s 4",
  Python = PYTHON ~= "" and (PYTHON .. " bench/python.py httpd %s") or nil,
}

local notes = {}
local function note(s)
  for _, n in ipairs(notes) do if n == s then return end end
  notes[#notes + 1] = s
end

local function readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read "a"
  f:close()
  return s
end

local function sh(cmd)
  local p = io.popen(cmd)
  local s = p:read "a"
  p:close()
  return (s:gsub("%s+$", ""))
end

-- one run of a loop: value (ops/s), or nil, "na" | "error", reason
local function runloop(impl, loop)
  local cmd = ("%s%s%s %s %s 2>%s"):format(
    TIMEOUT ~= "" and ("%s -k 5 %d "):format(TIMEOUT, math.ceil(TIME * 10 + 30)) or "",
    loop.pin and TASKSET ~= "" and (TASKSET .. " -c 0 ") or "",
    impl.cmd, loop.name, TIME, TMP)
  local p = io.popen(cmd)
  local line = p:read "l" or ""
  p:close()
  local ops, el, cpu = line:match "^ok (%d+) ([%d.]+) ([%d.]+)"
  if ops then
    local secs = tonumber((loop.cpu and CLOCK ~= "wall") and cpu or el)
    if secs <= 0 then return nil, "error", "no time measured: " .. line end
    return tonumber(ops) / secs
  end
  local why = line:match "^na (.*)"
  if why then return nil, "na", why end
  local err = readfile(TMP) or ""
  return nil, "error", (line ~= "" and line or err:match "[^\n]*")
end

local function sleep(s) os.execute("sleep " .. s) end

-- a process is gone once it no longer exists or is a zombie
local function alive(pid)
  local stat = readfile("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match "^%d+ %b() Z"
end

-- start an HTTP server (it writes its port and its pids to a file), run
-- wrk against it, then stop exactly those pids
local function runhttp(impl)
  local tmpl = HTTPD[impl.name]
  if not tmpl then return nil, "na", "not available: no HTTP server for " .. impl.name end
  if WRK == "" then return nil, "na", "not available: wrk not installed" end
  local portfile = TMP .. ".port"
  os.remove(portfile)
  os.execute(("%s </dev/null >/dev/null 2>%s &"):format(tmpl:format(portfile), TMP))
  local port, pids
  for _ = 1, 100 do
    local s = readfile(portfile)
    port, pids = (s or ""):match "^(%d+)\n([%d ]+)\n"
    if port then break end
    sleep(0.05)
  end
  local value, kind, why
  if not port then
    kind, why = "error", "server did not start: " .. ((readfile(TMP) or ""):match "[^\n]*")
  else
    local dur = math.max(1, math.floor(TIME * 2 + 0.5))
    local out = sh(("%s%s -t1 -c4 -d%ds http://127.0.0.1:%s/ 2>&1"):format(
      TIMEOUT ~= "" and ("%s -k 5 %d "):format(TIMEOUT, dur + 30) or "", WRK, dur, port))
    value = tonumber(out:match "Requests/sec:%s*([%d.]+)")
    if not value then kind, why = "error", "wrk: " .. out:gsub("\n", " ") end
    local errs = out:match "Socket errors[^\n]*" or out:match "Non%-2xx[^\n]*"
    if errs then note("http " .. impl.name .. ": " .. errs) end
    os.execute(("kill -TERM %s 2>/dev/null"):format(pids))
    for _ = 1, 40 do
      local any = false
      for pid in pids:gmatch "%d+" do any = any or alive(pid) end
      if not any then break end
      sleep(0.05)
    end
  end
  os.remove(portfile)
  if value then return value end
  return nil, kind, why
end

-- "http keep-alive, many connections": wrk -t2 -c1000 against 2 server
-- processes of each implementation: C epoll (loops httpka), unixipc
-- (bench/httpka.lua: server.run, 2 workers, concurrency 1024), Python's
-- asyncio streams, cqueues; each writes its port and pids to a file. The
-- median p99 latency and the socket errors of every implementation go
-- into the notes. BENCH_KA_SECONDS (default 5) per run, BENCH_KA_ROUNDS
-- (default 5) runs at most.
local KA_SECONDS = tonumber(getenv "BENCH_KA_SECONDS" or "") or 5
local KA_ROUNDS = tonumber(getenv "BENCH_KA_ROUNDS" or "") or 5
local HTTPKA = {
  C = "bench/bin/loops httpka %s 2",
  unixipc = "lua5.4 bench/httpka.lua %s 2 1024",
  cqueues = "lua5.4 bench/cqueues.lua httpka %s 2",
  Python = PYTHON ~= "" and (PYTHON .. " bench/python.py httpka %s 2") or nil,
}
local kastats = {} -- impl name -> {p99 = {ms, ...}, errors = {connect =, read =, write =, timeout =, non2xx =}}

local function ms(v, unit)
  v = tonumber(v)
  if not v then return nil end
  if unit == "us" then return v / 1000 elseif unit == "s" then return v * 1000 end
  return v
end

local function runka(impl)
  local tmpl = HTTPKA[impl.name]
  if not tmpl then return nil, "na", "not available: no keep-alive server for " .. impl.name end
  if WRK == "" then return nil, "na", "not available: wrk not installed" end
  local st = kastats[impl.name] or { p99 = {}, errors = { connect = 0, read = 0, write = 0, timeout = 0, non2xx = 0 } }
  kastats[impl.name] = st
  if #st.p99 >= KA_ROUNDS then return nil, "na", "rounds done" end
  local portfile = TMP .. ".port"
  os.remove(portfile)
  os.execute(("%s </dev/null >/dev/null 2>%s &"):format(tmpl:format(portfile), TMP))
  local port, pids
  for _ = 1, 200 do
    local s = readfile(portfile)
    port, pids = (s or ""):match "^(%d+)\n([%d ]+)\n"
    if port then break end
    sleep(0.05)
  end
  local value, kind, why
  if not port then
    kind, why = "error", "server did not start: " .. ((readfile(TMP) or ""):match "[^\n]*")
  else
    local out = sh(("%s%s -t2 -c1000 -d%ds --latency http://127.0.0.1:%s/ 2>&1"):format(
      TIMEOUT ~= "" and ("%s -k 5 %d "):format(TIMEOUT, KA_SECONDS + 30) or "", WRK, KA_SECONDS, port))
    value = tonumber(out:match "Requests/sec:%s*([%d.]+)")
    if not value then kind, why = "error", "wrk: " .. out:gsub("\n", " ") end
    local p99 = ms(out:match "%s99%%%s+([%d.]+)(%a+)")
    if p99 then st.p99[#st.p99 + 1] = p99 end
    local c, r, w, t = out:match "Socket errors: connect (%d+), read (%d+), write (%d+), timeout (%d+)"
    if c then
      st.errors.connect = st.errors.connect + c
      st.errors.read = st.errors.read + r
      st.errors.write = st.errors.write + w
      st.errors.timeout = st.errors.timeout + t
    end
    local bad = out:match "Non%-2xx or 3xx responses:%s*(%d+)"
    if bad then st.errors.non2xx = st.errors.non2xx + bad end
    os.execute(("kill -TERM %s 2>/dev/null"):format(pids))
    for _ = 1, 100 do
      local any = false
      for pid in pids:gmatch "%d+" do any = any or alive(pid) end
      if not any then break end
      sleep(0.05)
    end
  end
  os.remove(portfile)
  if value then return value end
  return nil, kind, why
end

for _, l in ipairs(LOOPS) do
  if l.name == "keepalive" then l.run = runka end
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- the median of a[i] / b[i] over the rounds both ran: each run set against
-- the other's run of the same round, so a change in the machine's load
-- between rounds (common on a shared machine) cancels out
local function pairedratio(a, b)
  local q = {}
  for i = 1, math.min(#a, #b) do q[i] = a[i] / b[i] end
  return median(q)
end

local function fmt(v, loop)
  if loop.scale then return ("%.0f"):format(v * loop.scale) end
  if v >= 1e6 then return ("%.2fM"):format(v / 1e6) end
  if v >= 1e4 then return ("%.0fk"):format(v / 1e3) end
  if v >= 1e3 then return ("%.1fk"):format(v / 1e3) end
  return ("%.0f"):format(v)
end

-- which loops
local selected = {}
for _, a in ipairs(arg) do selected[a] = true end
local loops = {}
for _, l in ipairs(LOOPS) do
  if next(selected) == nil or selected[l.name] then loops[#loops + 1] = l end
end
for name in pairs(selected) do
  local found = false
  for _, l in ipairs(LOOPS) do found = found or l.name == name end
  if not found then
    io.stderr:write("bench: unknown loop '", name, "'\n")
    os.exit(2)
  end
end

if WRK == "" then note "http: skipped, wrk is not installed (apt-get install wrk)" end

local impls = {}
for _, im in ipairs(IMPLS) do
  if im.cmd then impls[#impls + 1] = im else note(im.name .. ": skipped (" .. im.missing .. ")") end
end

io.write(("bench: %d rounds of %.2f s per run, %d loops, implementations: "):format(
  ROUNDS, TIME, #loops))
for i, im in ipairs(impls) do io.write(i > 1 and ", " or "", im.name) end
io.write "\n"

local results = {} -- results[loop][impl] = {values = {...}, status = nil | "na" | "error", why}
for _, loop in ipairs(loops) do
  io.write(("  %-9s"):format(loop.name))
  io.flush()
  local r = {}
  results[loop.name] = r
  for _, im in ipairs(impls) do r[im.name] = { values = {} } end
  for _ = 1, ROUNDS do
    for _, im in ipairs(impls) do
      local cell = r[im.name]
      if not cell.status then
        local v, kind, why
        if loop.run then v, kind, why = loop.run(im)
        elseif loop.http then v, kind, why = runhttp(im) else v, kind, why = runloop(im, loop) end
        if v then
          cell.values[#cell.values + 1] = v
        else
          cell.status, cell.why = kind, why
          if kind == "error" then io.stderr:write("\n  ", loop.name, " ", im.name, ": ", why, "\n") end
        end
      end
    end
    io.write "."
    io.flush()
  end
  io.write "\n"
end

-- the keep-alive loop's latency and errors, as notes
do
  local order = { "C", "unixipc", "cqueues", "Python" }
  for _, name in ipairs(order) do
    local st = kastats[name]
    if st and #st.p99 > 0 then
      local e = st.errors
      note(("keepalive %s: p99 latency %.1f ms (median of %d runs); socket errors over all runs: "
        .. "connect %d, read %d, write %d, timeout %d; non-2xx %d"):format(name, median(st.p99), #st.p99,
        e.connect, e.read, e.write, e.timeout, e.non2xx))
    end
  end
end

-- the report
local lines = {}
local function put(s) lines[#lines + 1] = s end

local cpu = (readfile "/proc/cpuinfo" or ""):match "model name%s*:%s*([^\n]+)" or "?"
put "# unixipc benchmark results"
put ""
put(("Date: %s  "):format(os.date "!%Y-%m-%d %H:%M UTC"))
put(("Machine: `%s`, %s CPUs, %s  "):format(sh "uname -srvmo", sh "nproc", cpu))
put(("Lua: %s; Python: %s; LuaSocket %s; cqueues %s; wrk: %s  "):format(
  sh "lua5.4 -v 2>&1", PYTHON ~= "" and sh(PYTHON .. " --version 2>&1") or "none",
  sh [[lua5.4 -e 'local ok, s = pcall(require, "socket"); io.write(ok and s._VERSION or "none")' 2>/dev/null]],
  sh [[lua5.4 -e 'local ok, s = pcall(require, "cqueues"); io.write(ok and tostring(s.VERSION) or "none")' 2>/dev/null]],
  WRK ~= "" and sh(WRK .. " -v 2>&1 | head -1") or "none"))
put(("Runs: %d rounds, %.2f s each, implementations alternating; the median run is shown, "
  .. "with its ratio to C in parentheses: the median over the rounds of each run divided by "
  .. "the C run of the same round.  "):format(ROUNDS, TIME))
put("Ops/s unless said otherwise; k = thousand, M = million. " .. (CLOCK == "wall"
  and "Every loop is rated by wall-clock time (BENCH_CLOCK=wall)."
  or "One-process loops (marked *) are rated by the process's CPU time, the others by wall-clock time."))
put ""

local head = "| loop |"
local rule = "|---|"
for _, im in ipairs(impls) do
  head = head .. " " .. im.name .. " |"
  rule = rule .. "---:|"
end
put(head .. " target | unixipc |")
put(rule .. "---:|---|")

for _, loop in ipairs(loops) do
  local r = results[loop.name]
  local med = {}
  for _, im in ipairs(impls) do med[im.name] = median(r[im.name].values) end
  local c = med.C
  local row = "| " .. loop.what .. (loop.unit and (", " .. loop.unit) or "")
    .. ((loop.cpu and CLOCK ~= "wall") and " *" or "") .. " |"
  for _, im in ipairs(impls) do
    local cell, m = r[im.name], med[im.name]
    local s
    if m then
      s = fmt(m, loop)
      if im.name ~= "C" and c then
        s = s .. (" (%.2f)"):format(pairedratio(cell.values, r.C.values))
      end
    elseif cell.status == "na" then
      if cell.why:match "^not built" then
        s = "n/a (not built)"
      else
        s = "n/a"
        if cell.why:match "^not available" then
          -- the loop has no such implementation: nothing to explain
        elseif cell.why:match "not installed" then
          note(im.name .. ": " .. cell.why)
        else
          note(loop.name .. ", " .. im.name .. ": " .. cell.why)
        end
      end
    else
      s = "error"
      note(loop.name .. ", " .. im.name .. ": " .. tostring(cell.why))
    end
    row = row .. " " .. s .. " |"
  end
  local u = med.unixipc
  local verdict = "-"
  if u and c then
    local bad = {}
    local uv = r.unixipc.values
    if loop.target and pairedratio(uv, r.C.values) < loop.target then
      bad[#bad + 1] = "below target"
    end
    for _, im in ipairs(impls) do
      if im.name ~= "C" and im.name ~= "unixipc" and med[im.name]
        and pairedratio(uv, r[im.name].values) < 1 then
        bad[#bad + 1] = "behind " .. im.name
      end
    end
    verdict = #bad == 0 and "ok" or table.concat(bad, ", ")
  end
  row = row .. " " .. (loop.target and (">= %.2f"):format(loop.target) or "-") .. " | " .. verdict .. " |"
  put(row)
end

if #notes > 0 then
  put ""
  put "Notes:"
  put ""
  for _, n in ipairs(notes) do put("- " .. n) end
end

-- every run, for judging the noise
put ""
put "<details><summary>All runs (ops/s, in run order)</summary>"
put ""
for _, loop in ipairs(loops) do
  for _, im in ipairs(impls) do
    local vals = results[loop.name][im.name].values
    if #vals > 0 then
      local t = {}
      for i, v in ipairs(vals) do t[i] = fmt(v, loop) end
      put(("- %s, %s: %s"):format(loop.name, im.name, table.concat(t, " ")))
    end
  end
end
put ""
put "</details>"
put ""
put "Reproduce: `make bench` (or `bash bench/run.sh [loop ...]`); see bench/README.md."

local report = table.concat(lines, "\n") .. "\n"
io.write("\n", report)
if OUT ~= "-" and next(selected) == nil then
  local f = assert(io.open(OUT, "w"))
  f:write(report)
  f:close()
  io.write("bench: written to ", OUT, "\n")
elseif OUT ~= "-" then
  io.write("bench: partial run (loops selected), ", OUT, " left unchanged\n")
end
os.remove(TMP)
