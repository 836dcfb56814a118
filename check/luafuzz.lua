-- check/luafuzz.lua (make luafuzz): every public function and method of
-- the module called with random arguments, in forked children.
--
-- The functions are enumerated, not listed: the module table, the
-- functions of unixipc.loop, the method tables ipc._methods.<kind> (fd,
-- socket, pidfd, eventfd, memfd), and the methods and metamethods of the
-- objects the module makes (channel, pollset, lock, signal bridge, spawn's
-- process, popen's program, loop task, address table). A function added
-- later is fuzzed without a change here; one that must not be called at
-- random goes in SKIP, or is tamed in tame() with its reason in TAMED.
--
-- Arguments: nil, booleans, integer extremes, nan, inf, huge and NUL-filled
-- strings, tables of every shape (with metatables, self references),
-- functions, coroutines, objects of every class (open and closed), io
-- files (open and closed: foreign userdata), tables that act as foreign
-- poll keys; for some calls (GOOD), half the time well-formed arguments,
-- which random ones rarely are. The objects include a live child of the
-- batch and pidfds of it, eventfds (counter, semaphore, non-blocking),
-- memfds (sealed and not), popen'd programs (cat, true), loop tasks in
-- every state, channels whose frames travel in memfds. About one call in
-- seven runs inside a unixipc.loop task (the cooperative paths of the C
-- core), bounded by a join with a timeout and cancelled if it is still
-- waiting. Each batch of calls runs in a forked child that always ends in
-- _exit, after killing and reaping every child it still has; before each
-- call the child tells the parent what it is about to call. The part
-- fails when a child
--   - dies by SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS or SIGTRAP
--     (a sanitizer report too, under `make check`, which runs this against
--     the ASan build), or
--   - makes no progress for HANG seconds in a call that is not documented
--     to wait (WAITS); a documented wait is cut short and counted, or
--   - breaks a contract the harness checks (exec.missing must leave the
--     descriptor table as it found it), or
--   - lets a signal reach the fuzzer's own process (it watches HUP, INT,
--     QUIT, USR1, USR2, PIPE, ALRM, TERM, URG and IO through a bridge).
-- Calls that can wait are given a timeout or a non-blocking object first.
-- Nothing reaches a process outside the batch: kill, pidfd and setowner
-- only ever name a live (unreaped) child of the batch or a pid no process
-- has; process objects' methods only act on the batch's own; popen and
-- _spawn run only true and cat, with pdeathsig KILL.
-- The batch runs in its temporary directory, with stdin /dev/null and its
-- stdout and stderr in files there; generated strings never hold "/"
-- (and never are "." or ".."), except for paths built under that
-- directory. With unshare(1) the whole run gets a network namespace of its
-- own with only loopback, so no name is sent to a DNS server and no packet
-- leaves the machine.
--
--   lua5.4 check/luafuzz.lua [seconds] [--seed N] [--batch N]
--     seconds: time budget (default LUAFUZZ_SECONDS or 30)
--     --seed N --batch N: replay one batch (printed with a failure)
package.path = "lua/?.lua;lua/?/init.lua;fuzz/?.lua;" .. package.path
package.cpath = (os.getenv("UNIXIPC_BUILD") or "build") .. "/?.so;" .. package.cpath
local ipc = require "unixipc"
local R = require "reader"

local args = { ... }
local SECONDS = tonumber(os.getenv("LUAFUZZ_SECONDS")) or 30
local SEED, ONLYBATCH
do
  local i = 1
  while args[i] do
    if args[i] == "--seed" then SEED = tonumber(args[i + 1]); i = i + 1
    elseif args[i] == "--batch" then ONLYBATCH = tonumber(args[i + 1]); i = i + 1
    elseif args[i] == "--inner" then -- re-executed under unshare
    elseif tonumber(args[i]) then SECONDS = tonumber(args[i]) end
    i = i + 1
  end
end
local SLOW = tonumber(os.getenv("UNIXIPC_SLOW")) or 1
local HANG = 3 * SLOW          -- seconds without progress that make a hang
local CALLS = 150              -- calls per batch

-- ---- the network namespace ----------------------------------------------
local inner = false
for _, a in ipairs(args) do if a == "--inner" then inner = true end end
if not inner and os.getenv("LUAFUZZ_NOUNSHARE") ~= "1" then
  local argv = {}
  for _, a in ipairs(args) do argv[#argv + 1] = "'" .. a:gsub("'", "'\\''") .. "'" end
  local cmd = "unshare -rn sh -c 'ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null; " ..
    "exec \"$0\" \"$@\"' " .. (arg[-1] or "lua5.4") .. " " .. arg[0] .. " --inner " .. table.concat(argv, " ")
  if os.execute("unshare -rn true 2>/dev/null") then
    local ok, how, code = os.execute(cmd)
    os.exit(ok and 0 or (how == "exit" and code or 1))
  end
  print("luafuzz: no unshare -rn here: running in this network namespace (resolver limited to 1 s)")
end

-- ---- what is fuzzed, and how --------------------------------------------

local loop = require "unixipc.loop"

-- never called at random: the reason is printed with the figures
local SKIP = {
  ["_exit"] = "ends the process (each batch ends in it)",
  exec = "replaces the process with an arbitrary program; fuzzed as exec.missing instead, "
    .. "whose program cannot exist, so its argv, env, fds and cwd are applied and put back",
  daemonize = "forks twice and ends the calling process",
  chdir = "would move the batch out of its temporary directory (the path sandbox)",
}
-- not loaded at all (printed with the figures too)
local NOTLOADED = {
  ["unixipc.cqueues"] = "needs a cqueues controller to run its coroutines; its waiter protocol "
    .. "is the one unixipc.loop's tasks exercise here",
}

-- documented to wait (README): a call to one of these that makes no
-- progress is a wait cut short, not a hang. Names are a method's or a
-- function's, or class.method where the bare name would cover too much.
local WAITS = {
  accept = true, connect = true, send = true, sendall = true, recv = true, sendto = true,
  recvfrom = true, sendmsg = true, recvmsg = true, read = true, write = true, sleep = true,
  poll = true, wait = true, waitpid = true, flock = true, lock = true, getaddrinfo = true,
  getnameinfo = true, address = true, listen = true, close = true, --[[ SO_LINGER ]]
  ["channel.send"] = true, ["channel.recv"] = true, ["proc.close"] = true, spawn = true,
  ["eventfd.take"] = true, ["eventfd.add"] = true, ["popen.communicate"] = true,
  ["popen.close"] = true, ["task.join"] = true, ["loop.run"] = true,
}

-- what each tamed call gets, and why (printed with the figures)
local TAMED = {
  ["proc.kill"] = "SEGV, BUS or FPE becomes TERM (its child is of the sanitized build)",
  ["popen.kill"] = "SEGV, BUS or FPE becomes TERM",
  ["pidfd.kill"] = "SEGV, BUS or FPE becomes TERM (the handle may name a child of the batch)",
  setasync = "a signal of SEGV, BUS or FPE is dropped (the owner may be a child of the batch)",
  kill = "pid: a live child of the batch or a pid no process has (never 0 or a group); SEGV, BUS "
    .. "and FPE only to the pid no process has (a sanitized child reports them as its own fault)",
  ["pidfd"] = "pid: a live child of the batch or a pid no process has",
  setowner = "owner: 0, a live child of the batch or a pid no process has (SIGIO/SIGURG go there)",
  popen = "argv {\"true\"} or {\"cat\"} (cat's stdin false or a pipe), pdeathsig KILL; waited for or killed",
  _spawn = "program true, cat or a path that does not exist, pdeathsig KILL; killed and reaped at once",
  ["exec.missing"] = "a program path that cannot exist; the descriptor table is compared before and after",
  listenfds = "LISTEN_PID/FDS/FDNAMES set first (valid or not); the objects it makes are kept, never closed",
  notify = "NOTIFY_SOCKET is a datagram socket of the batch, drained before each call",
  setenv = "never NOTIFY_SOCKET or PATH", unsetenv = "never NOTIFY_SOCKET or PATH",
  _setwaiter = "unixipc.loop's waiter is put back after the call",
  _spawnmode = "stays \"fork\" in a sanitized build (ASan cannot follow a child cloned onto its own stack)",
  ["loop.run"] = "timeout 0 to 10 ms", ["loop.sleep"] = "1 ms", ["loop.wait"] = "timeout 0 or 1 ms",
  ["task.join"] = "timeout 0 or 1 ms", wait = "timeout 0 or 1 ms (pidfd, proc, popen, pollset)",
  ["popen.communicate"] = "timeout 0 or 10 ms", close = "grace 0 (proc, popen)",
  sleep = "1 ms", poll = "timeout 0 or 1 ms", waitpid = "nohang unless every child of the batch has ended", connect = "timeout 50 ms",
  flock = "wait false, 0 or 10 ms", lock = "wait false, 0 or 10 ms", dup2 = "never onto the harness's pipe",
  ["signal.read"] = "timeout 0 or 1 ms", spawn = "table form gets a harmless function; a pdeathsig of SEGV, BUS or FPE becomes KILL "
    .. "(the batch's end sends it to a sanitized child)",
}

-- calls never made inside a task (they fork: the child would run the loop)
local NOTASK = { fork = true, _forkrun = true, _forkrunx = true, spawn = true }

-- a sanitized build forks where the plain one clones a child onto a stack
-- of its own in our memory (csrc/exec.c): ASan cannot follow that child
local SANITIZED = os.getenv("ASAN_OPTIONS") ~= nil

local TASKSHARE = 0.15 -- of the calls, made inside a unixipc.loop task
local HARNESSFD = 1000 -- the batch's progress pipe, above every number a call makes

local function sanitize(s)
  if type(s) ~= "string" then return s end
  s = s:gsub("/", "_")
  if s == "." or s == ".." then s = "_" .. s end
  return s
end

local DICT = { "r", "w", "rw", "p", "ex", "sh", "read", "write", "stream", "dgram", "seqpacket",
  "raw", "unix", "inet", "inet6", "oob", "peek", "dontwait", "waitall", "nohang", "USR1", "USR2",
  "URG", "IO", "CHLD", "TERM", "HUP", "RTMIN+1", "127.0.0.1:0", "[::1]:0", "*:0", "@fuzz",
  "localhost:1", "type", "start", "len", "whence", "wait", "ofd", "size", "maxfds", "flags",
  "data", "fds", "cred", "to", "nonblock", "timeout", "backlog", "mode", "unlink", "reuseaddr",
  "family", "host", "port", "path", "abstract", "maxsize", "numeric", "passive", "drain",
  "linger", "rcvbuf", "passcred", "error", "set", "cur", "end", "r+", "w+", "a+", "", "\0",
  -- the options and names of pidfd, eventfd, memfd, popen, spawn, channel, notify
  "semaphore", "seal", "grow", "shrink", "future_write", "exec", "stdin", "stdout", "stderr",
  "pipe", "env", "cwd", "setsid", "pdeathsig", "memfd", "KILL", "READY=1", "READY", "STATUS",
  "FDSTORE", "true", "cat" }

-- the live children of process pid (zombies included): {pid, ...}
local function children(pid)
  local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid))
  local list = {}
  if f then
    for k in (f:read("a") or ""):gmatch("%d+") do list[#list + 1] = tonumber(k) end
    f:close()
  end
  return list
end

-- every descriptor: {fd = file, with "+cloexec" when close-on-exec}
local function fdtable()
  local t = ipc._openfds()
  for fd, target in pairs(t) do
    local f = io.open("/proc/self/fdinfo/" .. fd)
    local fl = f and f:read("a"):match("flags:%s*(%d+)")
    if f then f:close() end
    t[fd] = target .. ((fl and tonumber(fl, 8) & 0x80000 ~= 0) and "+cloexec" or "")
  end
  return t
end

-- what differs between two fdtable()s, or nil
local function fddiff(a, b)
  local d = {}
  for fd, v in pairs(a) do if b[fd] ~= v then d[#d + 1] = ("%d: %s -> %s"):format(fd, v, b[fd] or "closed") end end
  for fd, v in pairs(b) do if a[fd] == nil then d[#d + 1] = ("%d: closed -> %s"):format(fd, v) end end
  table.sort(d)
  return d[1] and table.concat(d, ", ")
end

-- ---- one batch, in a child ------------------------------------------------

local function batch(seed, progress, tmp)
  math.randomseed(seed)
  local rnd = math.random
  local function reader()
    local t = {}
    for i = 1, 512 do t[i] = string.char(rnd(0, 255)) end
    return R.new(table.concat(t))
  end
  local me = ipc.getpid()

  -- the objects of this batch; an object may stand in for several classes
  local pool, closeme, keep = {}, {}, {}
  local function add(o, ...)
    for _, cls in ipairs({ ... }) do pool[#pool + 1] = { o = o, cls = cls } end
    return o
  end
  local function mk(f, ...) local ok, o = pcall(f, ...); return ok and o or nil end
  local a, b = ipc.socketpair("stream", { nonblock = true }); add(a, "socket"); add(b, "socket")
  local d1, d2 = ipc.socketpair("dgram"); add(d1, "socket"); add(d2, "socket")
  local s1, s2 = ipc.socketpair("seqpacket"); add(s1, "socket"); add(s2, "socket")
  local pr, pw = ipc.pipe(); add(pr, "fd"); add(pw, "fd")
  local tcp = mk(ipc.listen, "127.0.0.1:0"); if tcp then tcp:setnonblocking(true); add(tcp, "socket") end
  local udp = mk(ipc.socket, "inet", "dgram"); if udp then add(udp, "socket") end
  local file = ipc.open(tmp .. "/file", "w+"); add(file, "fd")
  local dead = ipc.socketpair(); dead:close(); add(dead, "socket")
  local deadfd = ipc.open(tmp .. "/file", "r"); deadfd:close(); add(deadfd, "fd")
  local x1, x2 = ipc.socketpair("stream"); local ch = ipc.channel(x1); add(ch, "channel"); add(x2, "socket")
  local ps = ipc.pollset(); ps:add(pr, "r"); ps:add(a, "rw"); add(ps, "pollset")
  local lk = mk(ipc.flock, file, "ex"); if lk then add(lk, "lock") end
  local rl = mk(ipc.lock, file, { start = 0, len = 1 }); if rl then rl:release(); add(rl, "lock") end
  local sig = mk(ipc.signalfd, { "USR2" }); if sig then add(sig, "signal") end
  local dsig = mk(ipc.signalfd, { "WINCH" }); if dsig then dsig:close(); add(dsig, "signal") end
  local proc = mk(ipc.spawn, function() end); if proc then add(proc, "proc") end
  local addr = ipc.address("127.0.0.1:1"); add(addr, "address")

  -- the new API: a child that lives until its channel ends, pidfds of it
  -- and of the child that has ended (not reaped), a closed one
  local kid = mk(ipc.spawn, { function(c) c:recv() end, pdeathsig = "KILL" })
  if kid then add(kid, "proc"); add(kid.chan, "channel") end
  local hk = kid and mk(kid.pidfd, kid); if hk then add(hk, "pidfd", "fd") end
  local hz = proc and mk(proc.pidfd, proc); if hz then add(hz, "pidfd", "fd") end
  local hd = kid and mk(kid.pidfd, kid); if hd then hd:close(); add(hd, "pidfd") end
  -- eventfds: counter, semaphore, non-blocking, closed
  local ev1 = ipc.eventfd(3); add(ev1, "eventfd", "fd")
  local ev2 = ipc.eventfd(2, { semaphore = true }); add(ev2, "eventfd", "fd")
  local ev3 = ipc.eventfd(0, { nonblock = true }); add(ev3, "eventfd", "fd")
  local evd = ipc.eventfd(); evd:close(); add(evd, "eventfd")
  -- memfds: not sealable, sealable, sealed as a channel body, closed
  local m1 = ipc.memfd("luafuzz"); m1:write("not sealable"); add(m1, "memfd", "fd")
  local m2 = ipc.memfd("luafuzz-sealable", { seal = true }); m2:write("sealable"); add(m2, "memfd", "fd")
  local m3 = ipc.memfd("luafuzz-sealed", { seal = true })
  m3:write(string.pack("<BI4", 5, 6) .. "sealed"); m3:seal("write", "grow", "shrink"); add(m3, "memfd", "fd")
  local md = ipc.memfd("luafuzz-closed"); md:close(); add(md, "memfd")
  -- programs: cat with both pipes, true that has ended
  local pc = mk(ipc.popen, { "cat" }, { stdin = "pipe", stdout = "pipe", pdeathsig = "KILL" })
  if pc then add(pc, "popen"); add(pc.stdin, "fd"); add(pc.stdout, "fd") end
  local pt = mk(ipc.popen, { "true" }, { stdin = false, stdout = false, pdeathsig = "KILL" })
  if pt then add(pt, "popen") end
  -- channels whose every frame travels in a memfd (stream and seqpacket),
  -- with frames already on their way
  local y1, y2 = ipc.socketpair("stream")
  local cm1, cm2 = ipc.channel(y1, { memfd = 0 }), ipc.channel(y2, { memfd = 0 })
  cm1:send({ "a memfd frame", 1, 2.5 }); cm1:send(string.rep("m", 100), { pr })
  add(cm1, "channel"); add(cm2, "channel")
  local z1, z2 = ipc.socketpair("seqpacket")
  local cz1, cz2 = ipc.channel(z1, { memfd = 0 }), ipc.channel(z2, { memfd = 0 })
  cz1:send({ seq = true }); add(cz1, "channel"); add(cz2, "channel")
  -- sd_notify's socket, in the batch
  local nsock = mk(ipc.listen, tmp .. "/notify", { type = "dgram" })
  if nsock then add(nsock, "socket"); ipc.setenv("NOTIFY_SOCKET", tmp .. "/notify") end
  -- loop tasks: waiting on a pipe nobody writes (tr is the harness's),
  -- waiting on a pool pipe, sleeping, done, cancelled, failed
  local tr, tw = ipc.pipe()
  local t1 = loop.spawn(function() return loop.wait(tr, "r") end)
  local t2 = loop.spawn(function() return pr:read(1) end)
  local t3 = loop.spawn(function() loop.sleep(1e6) end)
  local t4 = loop.spawn(function() return 1, "two" end)
  local t5 = loop.spawn(function() loop.sleep(1e6) end)
  local t6 = loop.spawn(function() error("task error") end)
  pcall(loop.run, 0)
  t5:cancel()
  pcall(t6.join, t6, 0)
  for _, t in ipairs({ t1, t2, t3, t4, t5, t6 }) do add(t, "task") end
  local loopwaiter = ipc._setwaiter(nil); ipc._setwaiter(loopwaiter)

  local iof = io.open(tmp .. "/iofile", "w+")
  local iodead = io.open(tmp .. "/iofile", "r"); iodead:close()
  local co = coroutine.create(function() coroutine.yield(1) end)
  local codead = coroutine.create(function() end); coroutine.resume(codead)
  local foreignkey = { getfd = function() return 0 end }
  local badkey = setmetatable({}, { __index = function() error("boom") end })
  local extra = {
    a, b, d1, s1, pr, pw, file, dead, deadfd, ch, ps, lk or false, sig or false, addr, iof, iodead,
    io.stdout, co, codead, foreignkey, badkey, function() end, function() error("fn") end,
    coroutine.yield, tmp .. "/sock" .. rnd(1, 3), tmp .. "/file", "@luafuzz" .. rnd(1, 3),
    math.huge, -math.huge, 0 / 0, math.maxinteger, math.mininteger, string.rep("\0", 4096),
    string.rep("x", 1 << 20), proc or false,
    -- the new API's objects, a directory, and bounded task bodies
    hk or false, hz or false, ev1, ev2, ev3, m1, m2, m3, md, pc or false, kid or false, cm1, cm2,
    t1, t4, t6, tmp, function() loop.sleep(0.001) end, function() return loop.wait(tr, "r", 0.01) end,
  }

  -- the functions: module table, unixipc.loop, then methods per class
  local targets = {}
  local names = {}
  for k, v in pairs(ipc) do
    if type(v) == "function" and not SKIP[k] then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do targets[#targets + 1] = { name = k, f = ipc[k] } end
  local nmodule = #targets
  targets[#targets + 1] = { name = "exec.missing", f = ipc.exec }
  local lnames = {}
  for k, v in pairs(loop) do if type(v) == "function" then lnames[#lnames + 1] = k end end
  table.sort(lnames)
  for _, k in ipairs(lnames) do targets[#targets + 1] = { name = "loop." .. k, f = loop[k] } end
  -- a class's methods: list (a method table) or the object's __index chain
  -- (popen objects find proc's methods through it), and its metamethods
  local function methods(cls, obj, list)
    local mt = getmetatable(obj)
    local found = {}
    local function collect(t, chain, depth)
      if type(t) ~= "table" or depth > 4 then return end
      for k, v in pairs(t) do
        if type(k) == "string" and type(v) == "function" and found[k] == nil then found[k] = v end
      end
      local m = chain and getmetatable(t)
      if m and type(rawget(m, "__index")) == "table" then collect(rawget(m, "__index"), true, depth + 1) end
    end
    if list then collect(list, false, 0)
    elseif mt then collect(type(mt.__index) == "table" and mt.__index or mt, true, 0) end
    for _, k in ipairs({ "__gc", "__close", "__tostring", "__len" }) do
      if mt and type(rawget(mt, k)) == "function" then found[k] = rawget(mt, k) end
    end
    local ms = {}
    for k in pairs(found) do if k ~= "__index" then ms[#ms + 1] = k end end
    table.sort(ms)
    for _, k in ipairs(ms) do
      targets[#targets + 1] = { name = cls .. "." .. k, f = found[k], cls = cls, m = k }
    end
  end
  methods("fd", pr, ipc._methods.fd)
  methods("socket", a, ipc._methods.socket)
  if hk then methods("pidfd", hk, ipc._methods.pidfd) end
  methods("eventfd", ev1, ipc._methods.eventfd)
  methods("memfd", m1, ipc._methods.memfd)
  methods("channel", ch)
  methods("pollset", ps)
  if lk then methods("lock", lk) end
  if sig then methods("signal", sig) end
  if proc then methods("proc", proc) end
  if pc then methods("popen", pc) end
  methods("task", t1)
  methods("address", addr)
  progress(("targets %d %d\n"):format(nmodule, #targets))

  local function pick(cls)
    local c = {}
    for _, p in ipairs(pool) do if p.cls == cls then c[#c + 1] = p.o end end
    return c[rnd(#c)]
  end
  local function ispool(o, cls)
    for _, p in ipairs(pool) do if p.o == o and p.cls == cls then return true end end
    return false
  end

  local function value(r)
    local v = r:value(DICT, 1, extra)
    if type(v) == "string" and not v:find(tmp, 1, true) then v = sanitize(v) end
    if type(v) == "table" and getmetatable(v) == nil and v ~= foreignkey then
      for k, x in pairs(v) do if type(x) == "string" and not x:find(tmp, 1, true) then v[k] = sanitize(x) end end
    end
    return v
  end

  local function describe(t, argv, n)
    local parts = {}
    for i = 1, n do
      local v = argv[i]
      local s = type(v)
      if s == "string" then s = ("string(%d)"):format(#v)
      elseif s == "number" then s = tostring(v)
      elseif s == "userdata" or s == "table" then s = tostring(v):gsub("\n", " "):sub(1, 40) end
      parts[i] = s
    end
    return t.name .. "(" .. table.concat(parts, ", ") .. ")"
  end

  -- a pid that names a live child of this batch (not reaped, so its
  -- number cannot belong to anyone else) or no process at all
  local function safepid(r)
    local kids = children(me)
    if #kids > 0 and r:bit() then return kids[r:below(#kids) + 1] end
    return 0x7fffffff
  end
  local function allended()
    for _, k in ipairs(children(me)) do
      local f = io.open(("/proc/%d/stat"):format(k))
      local state = f and f:read("l"):match("^%d+ %b() (%S)")
      if f then f:close() end
      if state ~= "Z" then return false end
    end
    return true
  end
  local function numeric(v) return tonumber(v) ~= nil end -- numbers, and strings Lua takes for one
  -- a wait's bound: nil and non-negative numbers become one of choices;
  -- what the call must refuse (negative, nan, not a number) stays
  local function bound(v, r, choices)
    local x = tonumber(v)
    if v == nil or (x and x >= 0) then return r:pick(choices) end
    return v
  end
  local PROTECT = { NOTIFY_SOCKET = true, PATH = true }

  -- SEGV, BUS or FPE, by number or by name: a child of the sanitized build
  -- that gets one from kill(2) reports it as a fault of its own
  local FAULTS = { [ipc.signals.SEGV] = true, [ipc.signals.BUS] = true, [ipc.signals.FPE] = true }
  local function faultsig(v)
    local n = math.tointeger(tonumber(v))
    if n == nil and type(v) == "string" then n = ipc.signals[(v:upper():gsub("^SIG", ""))] end
    return n ~= nil and FAULTS[n] == true
  end
  -- give a call that can wait a bound, or confine what reaches past the batch
  local function tame(t, argv, n, r)
    local name, m, cls = t.name, t.m, t.cls
    if name == "kill" then argv[1] = faultsig(argv[2]) and 0x7fffffff or safepid(r)
    elseif name == "pidfd" then if argv[1] == nil or numeric(argv[1]) then argv[1] = safepid(r) end
    elseif m == "setowner" then if argv[2] == nil or numeric(argv[2]) then argv[2] = r:bit() and 0 or safepid(r) end
    -- p:kill, c:kill, h:kill signal a child of the batch, and setasync's
    -- signal goes to an owner that may be one: never a fault signal
    elseif m == "kill" then if faultsig(argv[2]) then argv[2] = "TERM" end
    elseif m == "setasync" then if faultsig(argv[3]) then argv[3] = nil end
    elseif name == "sleep" or name == "loop.sleep" then if type(argv[1]) == "number" and argv[1] >= 0 then argv[1] = 0.001 end
    elseif name == "poll" then argv[2] = r:pick({ 0, 0.001 })
    elseif name == "waitpid" then
      -- blocking only when no child could keep it waiting (the batch has
      -- children that live until it ends: the spawned kid, cat)
      if r:bit() or not allended() then argv[2] = "nohang" end
    elseif name == "dup2" then argv[2] = pick(r:pick({ "fd", "socket" })) -- never the harness's pipe
    elseif name == "connect" then
      if argv[2] == nil then argv[2] = {} end
      if type(argv[2]) == "table" and getmetatable(argv[2]) == nil then argv[2].timeout = 0.05 end
    elseif name == "flock" or name == "lock" then
      local o = name == "flock" and 3 or 2
      if type(argv[o]) == "table" and getmetatable(argv[o]) == nil then argv[o].wait = r:pick({ false, 0, 0.01 }) end
      if argv[o] == nil then argv[o] = { wait = false } end
    elseif name == "popen" then
      if argv[1] == nil or type(argv[1]) == "table" then
        argv[1] = r:pick({ { "true" }, { "cat" }, { "true", "--" } })
      end
      if argv[2] == nil then argv[2] = {} end
      local o = argv[2]
      if type(o) == "table" and getmetatable(o) == nil then
        if type(argv[1]) == "table" and argv[1][1] == "cat" and o.stdin ~= false and o.stdin ~= "pipe" then o.stdin = r:pick({ false, "pipe" }) end
        o.pdeathsig = "KILL"
      end
      -- (an argv or options that are no table make popen raise: nothing starts)
    elseif name == "_spawn" then
      argv[1] = r:pick({ "true", "cat", tmp .. "/missing/program" })
      if argv[1] == "cat" then argv[2] = {} end
      if type(argv[4]) == "table" and getmetatable(argv[4]) == nil then argv[4].pdeathsig = "KILL" end
    elseif name == "exec.missing" then
      argv[1] = tmp .. "/missing/program"
    elseif name == "spawn" then
      if type(argv[1]) == "table" and getmetatable(argv[1]) == nil then
        if r:bit() then argv[1][1] = r:pick({ function() end, function() error("in the child") end }) end
        -- the kernel sends pdeathsig when the batch ends: never a fault signal
        if faultsig(argv[1].pdeathsig) then argv[1].pdeathsig = "KILL" end
      end
    elseif name == "_spawnmode" then
      -- (any string but "fork", numbers included, means clone)
      if SANITIZED and (type(argv[1]) == "string" or type(argv[1]) == "number") then argv[1] = "fork" end
    elseif name == "listenfds" then
      if r:bit() then
        ipc.setenv("LISTEN_PID", r:bit() and tostring(me) or r:pick({ "1", "x", "", "0", "-5" }))
        ipc.setenv("LISTEN_FDS", r:pick({ "0", "1", "2", "x", "", "99999", "-1", "2147483647" }))
        if r:bit() then ipc.setenv("LISTEN_FDNAMES", r:pick({ "a", "a:b", "", "::", "a:b:c" }))
        else ipc.unsetenv("LISTEN_FDNAMES") end
      end
    elseif name == "notify" then
      if nsock then pcall(function() while nsock:recv(65536, "dontwait") do end end) end
    elseif name == "setenv" or name == "unsetenv" then
      if PROTECT[argv[1]] then argv[1] = "LUAFUZZ" end
    elseif name == "loop.run" then argv[1] = bound(argv[1], r, { 0, 0.001, 0.01 })
    elseif name == "loop.wait" then argv[3] = bound(argv[3], r, { 0, 0.001 })
    elseif m == "join" and cls == "task" then argv[2] = bound(argv[2], r, { 0, 0.001 })
    elseif m == "read" and cls == "signal" then argv[2] = r:pick({ 0, 0.001 })
    elseif m == "wait" and (cls == "pollset" or cls == "pidfd" or cls == "proc" or cls == "popen") then
      argv[2] = bound(argv[2], r, { 0, 0.001 })
    elseif m == "communicate" then argv[3] = bound(argv[3], r, { 0, 0.01 })
    elseif m == "close" and (cls == "proc" or cls == "popen") then argv[2] = 0
    end
    -- a process object's methods act on that process only: never on a
    -- table that merely looks like one
    if (cls == "proc" or cls == "popen") and type(argv[1]) == "table" and not ispool(argv[1], cls) then
      argv[1] = pick(cls)
    end
    -- an object about to wait gets a short timeout first
    if WAITS[m] or WAITS[name] then
      local self = argv[1]
      if (type(self) == "userdata" or type(self) == "table") and self ~= iof and self ~= iodead then
        pcall(function() self:settimeout(0.01) end)
      end
    end
  end

  local function reap(pid)
    ipc.kill(pid, "KILL")
    ipc.waitpid(pid)
  end

  local function after(t, ok, res, res2)
    if t.name == "_setwaiter" then ipc._setwaiter(loopwaiter) end
    if not ok then return end
    -- a forked child must go at once; what a call made is closed; what it
    -- started is killed and reaped
    if (t.name == "fork" or t.name == "_forkrun" or t.name == "_forkrunx") and res == 0 then ipc._exit(0) end
    if (t.name == "fork" or t.name == "_forkrun" or t.name == "_forkrunx" or t.name == "_spawn")
      and math.type(res) == "integer" and res > 0 then
      reap(res)
    end
    if t.name == "listenfds" then -- their numbers belong to pool objects too: never closed
      keep[#keep + 1] = res
      return
    end
    for _, v in ipairs({ res, res2 }) do
      if type(v) == "userdata" or (type(v) == "table" and getmetatable(v) and v ~= addr) then
        closeme[#closeme + 1] = v
      end
    end
  end

  local function closeall()
    for _, o in ipairs(closeme) do
      if type(o) == "table" and o.pid and o.wait then pcall(o.close, o, 0) -- proc, popen: no grace
      else pcall(function() o:close() end) end
    end
    closeme = {}
  end

  -- the call, or the call inside a task that unixipc.loop runs (bounded)
  local function call(t, argv, n, intask)
    if not intask then return pcall(t.f, table.unpack(argv, 1, n)) end
    local res
    local task = loop.spawn(function() res = table.pack(pcall(t.f, table.unpack(argv, 1, n))) end)
    for _ = 1, 3 do -- (join raises when another task failed meanwhile)
      pcall(task.join, task, 0.02)
      if res then break end
    end
    if not res then
      pcall(task.cancel, task)
      return false, "did not finish in its task"
    end
    return res[1], res[2], res[3]
  end

  -- half the calls to these get well-formed arguments (random ones rarely
  -- get past the argument checks), the other half random ones
  local bodies = { function() end, function() error("in a task") end, function() loop.sleep(0.001) end,
    function() return loop.wait(tr, "r", 0.01) end, function() loop.yield(); return 1 end }
  local function any() return pool[rnd(#pool)].o end
  local GOOD = {
    ["loop.spawn"] = function(r) return { r:pick(bodies), any() } end,
    ["loop.wait"] = function(r) return { any(), r:pick({ "r", "w", "rw", "p" }), 0.001 } end,
    channel = function(r) return { pick("socket"), r:pick({ nil, { memfd = 0 }, { memfd = false }, { maxfds = 1 } }) } end,
    retype = function() return { any() } end,
    spawn = function(r)
      return { { r:pick(bodies), any(), pdeathsig = r:pick({ nil, "KILL", "TERM" }), setsid = r:bit(),
        cwd = r:pick({ nil, tmp, "missing" }), fds = r:bit() and { [3] = any(), [5] = pick("fd") } or nil } }
    end,
    popen = function(r)
      return { { "cat" }, { stdin = r:pick({ false, "pipe" }), stdout = r:pick({ "pipe", false, pick("fd"), "out" }),
        stderr = r:pick({ nil, "stdout", "pipe", false }), env = r:bit() and { A = "1" } or nil,
        cwd = r:pick({ nil, tmp, "missing" }), setsid = r:bit(), fds = r:bit() and { [3] = any() } or nil } }
    end,
    ["exec.missing"] = function(r)
      return { "", { "x" }, r:bit() and { "A=1" } or nil,
        { fds = r:pick({ {}, { [0] = pick("fd"), [1] = any(), [2] = 2 }, { [0] = 1, [1] = 0 }, { [4] = any() } }),
          cwd = r:pick({ nil, tmp, "missing" }) } }
    end,
    notify = function(r)
      return { r:pick({ "READY=1", { READY = 1, STATUS = "fuzzing" }, { FDSTORE = 1, FDNAME = "x" } }),
        r:bit() and { pick("fd") } or nil }
    end,
    pidfd = function() return { 0 } end, -- (tame picks the pid)
    eventfd = function(r) return { r:pick({ 0, 1, 0xffffffff }), { semaphore = r:bit(), nonblock = r:bit() } } end,
    memfd = function(r) return { "fuzz", { seal = r:bit() } } end,
    ["memfd.seal"] = function(r) -- one to six seals at once
      local t = { pick("memfd") }
      for _ = 1, 1 + r:below(6) do t[#t + 1] = r:pick({ "write", "grow", "shrink", "seal", "future_write", "exec", "grow|shrink" }) end
      return t
    end,
    ["memfd.truncate"] = function(r) return { pick("memfd"), r:pick({ 0, 1, 4096, 1 << 20 }) } end,
    _memfdbody = function(r) return { pick("memfd"), r:pick({ 0, 11, 12, 1 << 20 }) } end,
    _sealedmemfd = function(r) return { "a", string.rep("b", r:pick({ 0, 1, 70000 })) } end,
    ["eventfd.add"] = function(r) return { pick("eventfd"), r:pick({ 1, 2, math.maxinteger }) } end,
    ["pidfd.kill"] = function(r) return { pick("pidfd"), r:pick({ 0, "TERM", "KILL", "STOP", "CONT", "USR1" }) } end,
    ["pidfd.getfd"] = function(r) return { pick("pidfd"), r:pick({ 0, 1, 2, 3, 99 }) } end,
    ["popen.communicate"] = function(r) return { pick("popen"), r:pick({ nil, "", "input", string.rep("z", 70000) }) } end,
    ["proc.kill"] = function(r) return { pick("proc"), r:pick({ "TERM", "KILL", 0, "USR1" }) } end,
    ["popen.kill"] = function(r) return { pick("popen"), r:pick({ "TERM", "KILL", 0, "USR1" }) } end,
    ["channel.send"] = function(r) return { pick("channel"), r:pick({ "v", { 1, { 2 } }, string.rep("s", 70000) }),
      r:bit() and { pick("fd") } or nil } end,
    listenfds = function() return {} end,
    setenv = function(r) return { r:pick({ "LUAFUZZ", "LISTEN_FDS", "LISTEN_PID" }), r:pick({ "1", "x", 3 }) } end,
    unsetenv = function(r) return { r:pick({ "LUAFUZZ", "LISTEN_FDS", "LISTEN_PID" }) } end,
  }

  local r = reader()
  local intasks = 0
  for i = 1, CALLS do
    if i % 16 == 0 then r = reader() end
    local t = targets[rnd(#targets)]
    local n = r:below(5)
    local argv = {}
    if GOOD[t.name] and r:bit() then
      argv = GOOD[t.name](r)
      n = 0
      for k = 1, 6 do if argv[k] ~= nil then n = k end end
    else
      for k = 1, n do argv[k] = value(r) end
      if t.cls and rnd() < 0.7 then argv[1] = pick(t.cls) or argv[1]; if n < 1 then n = 1 end end
    end
    tame(t, argv, 6, r)
    n = math.max(n, (t.name == "kill" or t.name == "dup2" or t.name == "poll") and 2 or 0)
    for k = n + 1, 6 do if argv[k] ~= nil then n = k end end
    local intask = not NOTASK[t.name] and rnd() < TASKSHARE
    if intask then intasks = intasks + 1 end
    progress(("%d %s%s\n"):format(i, describe(t, argv, n), intask and " [in a task]" or ""))
    local before = t.name == "exec.missing" and fdtable()
    local ok, res, res2 = call(t, argv, n, intask)
    local changed = before and fddiff(before, fdtable())
    if changed then progress(("broken exec.missing changed the descriptor table: %s\n"):format(changed)) end
    after(t, ok, res, res2)
    if #closeme > 20 then closeall() end
  end
  progress(("intasks %d\n"):format(intasks))
  progress("done\n")
end

-- every child of this process killed and reaped (the batch's last act)
local function reapall()
  local me = ipc.getpid()
  for _ = 1, 5 do
    local kids = children(me)
    if #kids == 0 then return end
    for _, k in ipairs(kids) do ipc.kill(k, "KILL") end
    for _, k in ipairs(kids) do ipc.waitpid(k) end
  end
end

-- ---- the parent: batches and their verdicts ------------------------------

local CRASH = { SEGV = true, BUS = true, ILL = true, FPE = true, ABRT = true, SYS = true, TRAP = true }

-- signals a batch has no business sending here: the parent blocks them
-- into a bridge and reads it after each batch (no call may reach a
-- process outside its batch; SIGCHLD and the terminal's are not watched)
local WATCH = { "HUP", "INT", "QUIT", "USR1", "USR2", "PIPE", "ALRM", "TERM", "URG", "IO" }
local watch = assert(ipc.signalfd(WATCH))

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/unixipc-luafuzz.XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

-- the batch's own process: no signal bridge of the parent, cwd the
-- temporary directory, stdin /dev/null, stdout and stderr to files there
-- (shown with a finding), the progress pipe at HARNESSFD
local function settle(tmp, w)
  ipc._sigreset()
  assert(ipc.chdir(tmp))
  local null = assert(ipc.open("/dev/null", "r"))
  ipc.dup2(null, 0)
  null:close()
  for fd, name in pairs({ [1] = "stdout", [2] = "stderr" }) do
    local log = assert(ipc.open(tmp .. "/" .. name, "w"))
    ipc.dup2(log, fd)
    log:close()
  end
  ipc.dup2(w, HARNESSFD)
  w:close()
  local hw = assert(ipc.fdopen(HARNESSFD))
  hw:setcloexec(true)
  return hw
end

local function runbatch(seed)
  local tmp = tmpdir()
  local r, w = assert(ipc.pipe())
  local pid = assert(ipc.fork())
  if pid == 0 then
    r:close()
    watch:close()
    local okset, hw = pcall(settle, tmp, w)
    if not okset then ipc._exit(3) end
    local ok, err = pcall(batch, seed, function(line) hw:write(line) end, tmp)
    if not ok then pcall(hw.write, hw, "error " .. tostring(err):gsub("\n", " ") .. "\n") end
    pcall(reapall)
    ipc._exit(0)
  end
  w:close()
  local last, buf, calls, hang = "start", "", 0, nil
  local info = { broken = {}, escapes = {} }
  -- a signal from outside, read while the batch runs: the call in flight
  -- (the last one announced) is named with it
  local function watched()
    while true do
      local rec = watch:read(0)
      if not rec then return end
      if (rec.name == "INT" or rec.name == "TERM" or rec.name == "HUP") and rec.pid ~= pid then
        print(("luafuzz: SIG%s from pid %d: stopping"):format(rec.name, rec.pid))
        ipc.kill(pid, "KILL")
        ipc.waitpid(pid)
        os.exit(1)
      end
      info.escapes[#info.escapes + 1] = ("SIG%s reached the fuzzer's own process from pid %d (batch %d) during %s"):format(
        rec.name, rec.pid, pid, last:match("^%d+ (.*)$") or last)
    end
  end
  while true do
    local ready = ipc.poll({ [r] = "r", [watch] = "r" }, HANG)
    if ready[watch] then watched() end
    if not ready[r] and not ready[watch] then hang = true; break end
    if not ready[r] then goto continue end
    local s = r:read(65536)
    if not s then break end
    buf = buf .. s
    for line in buf:gmatch("([^\n]*)\n") do
      if line:match("^%d+ ") then
        calls = calls + 1
        last = line
      elseif line:match("^broken ") then
        info.broken[#info.broken + 1] = line:sub(8)
      elseif line:match("^targets ") then
        info.nmodule, info.ntargets = line:match("^targets (%d+) (%d+)")
      elseif line:match("^intasks ") then
        info.intasks = tonumber(line:match("%d+"))
      elseif line ~= "done" then
        last = line
      end
    end
    buf = buf:match("[^\n]*$")
    ::continue::
  end
  r:close()
  local how, code
  if hang then
    ipc.kill(pid, "KILL")
    _, how, code = ipc.waitpid(pid)
  else
    -- the pipe closed (the child ended, or a fuzzed call closed it): wait, bounded
    local deadline = ipc.monotime() + HANG * 3
    repeat
      local p
      p, how, code = ipc.waitpid(pid, "nohang")
      if p ~= 0 then break end
      ipc.sleep(0.01)
    until ipc.monotime() > deadline
    if how == nil then
      hang = true
      ipc.kill(pid, "KILL")
      _, how, code = ipc.waitpid(pid)
    end
  end
  local f = io.open(tmp .. "/stderr")
  local stderr = f and f:read("a") or ""
  if f then f:close() end
  os.execute("rm -rf '" .. tmp .. "'")
  local verdict
  local lastcall = last:match("^%d+ (.*)$") or last
  local fname = lastcall:match("^([%w_.]+)%(")
  local m = fname and (fname:match("%.(.+)$") or fname)
  if how == "signal" and CRASH[ipc.signals[code] or ""] then
    verdict = ("crash: died by SIG%s in %s"):format(ipc.signals[code], lastcall)
  elseif hang then
    if fname and (WAITS[fname] or WAITS[m]) then
      verdict = "wait"
    else
      verdict = ("hang: no progress for %ds in %s"):format(HANG, lastcall)
    end
  elseif #info.broken > 0 then
    verdict = "broken contract: " .. info.broken[1]
  end
  -- what reached this process from outside: nothing may
  watched()
  if #info.escapes > 0 and (verdict == nil or verdict == "wait") then verdict = "escape: " .. info.escapes[1] end
  if verdict and verdict ~= "wait" then io.stderr:write(stderr:sub(-4000)) end
  return verdict, calls, last, info
end

local base = SEED or (os.time() % 100000) * 1000
local start = ipc.monotime()
local batches, calls, waits, findings, crashes, hangs, others = 0, 0, 0, {}, 0, 0, 0
local intasks, nmodule, ntargets = 0, 0, 0
local waitnames = {}
local i = ONLYBATCH or 0
while true do
  local seed = base + i
  local verdict, n, last, info = runbatch(seed)
  batches, calls = batches + 1, calls + n
  intasks = intasks + (info.intasks or 0)
  nmodule, ntargets = math.max(nmodule, tonumber(info.nmodule) or 0), math.max(ntargets, tonumber(info.ntargets) or 0)
  if verdict == "wait" then
    waits = waits + 1
    local w = (last:match("^%d+ ([%w_.]+)%(") or last)
    waitnames[w] = (waitnames[w] or 0) + 1
    if os.getenv("LUAFUZZ_VERBOSE") then print("luafuzz: wait cut short (seed " .. seed .. "): " .. last) end
  elseif verdict then
    if verdict:match("^crash") then crashes = crashes + 1
    elseif verdict:match("^hang") then hangs = hangs + 1
    else others = others + 1 end
    findings[#findings + 1] = ("%s (replay: lua5.4 check/luafuzz.lua --seed %d --batch 0)"):format(verdict, seed)
    print("luafuzz: FINDING " .. findings[#findings])
  end
  if last and last:match("^error ") then print("luafuzz: harness error: " .. last) end
  i = i + 1
  if ONLYBATCH or ipc.monotime() - start >= SECONDS then break end
end
watch:close()

-- the figures, and what was left out
local function sorted(t) local l = {} for k in pairs(t) do l[#l + 1] = k end table.sort(l) return l end
for _, k in ipairs(sorted(SKIP)) do print(("luafuzz: skipped %s: %s"):format(k, SKIP[k])) end
for _, k in ipairs(sorted(NOTLOADED)) do print(("luafuzz: not loaded %s: %s"):format(k, NOTLOADED[k])) end
print("luafuzz: tamed (bounded, or kept inside the batch; why in check/luafuzz.lua): " .. table.concat(sorted(TAMED), " "))
for _, k in ipairs(sorted(waitnames)) do print(("luafuzz: documented wait cut short: %s (%d)"):format(k, waitnames[k])) end
print(("luafuzz: %d calls in %d batches (%d module functions, %d targets with unixipc.loop's and every method; %d calls in loop tasks), %d crashes, %d hangs, %d broken contracts or escapes, %d documented waits cut short, seed %d")
  :format(calls, batches, nmodule, ntargets, intasks, crashes, hangs, others, waits, base))
os.exit(#findings == 0 and 0 or 1)
