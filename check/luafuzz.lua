-- check/luafuzz.lua (make luafuzz): every public function and method of
-- the module called with random arguments, in forked children.
--
-- The functions are enumerated, not listed: the module table, the method
-- tables ipc._methods.fd and ipc._methods.socket, and the methods and
-- metamethods of the objects the module makes (channel, pollset, lock,
-- signal bridge, spawn's process, address table). A function added later
-- is fuzzed without a change here; one that must not be called at random
-- goes in SKIP or TAME below, with the reason.
--
-- Arguments: nil, booleans, integer extremes, nan, inf, huge and NUL-filled
-- strings, tables of every shape (with metatables, self references),
-- functions, coroutines, objects of every class (open and closed), io
-- files (open and closed: foreign userdata), tables that act as foreign
-- poll keys. Each batch of calls runs in a forked child that always ends
-- in _exit; before each call the child tells the parent what it is about
-- to call. The part fails when a child
--   - dies by SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS or SIGTRAP
--     (a sanitizer report too, under `make check`, which runs this against
--     the ASan build), or
--   - makes no progress for HANG seconds in a call that is not documented
--     to wait (WAITS); a documented wait is cut short and counted.
-- Calls that can wait are given a timeout or a non-blocking object first.
-- Paths are kept inside the batch's temporary directory: generated strings
-- never hold "/" (and never are "." or ".."), except for paths built under
-- that directory. With unshare(1) the whole run gets a network namespace
-- of its own with only loopback, so no name is sent to a DNS server and no
-- packet leaves the machine.
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

-- never called: the reason is printed with the figures
local SKIP = {
  ["_exit"] = "ends the process (each batch ends in it)",
  exec = "replaces the process with an arbitrary program",
  daemonize = "forks twice and ends the calling process",
  chdir = "would move the batch out of its temporary directory (the path sandbox)",
}

-- documented to wait (README): a call to one of these that makes no
-- progress is a wait cut short, not a hang
local WAITS = {
  accept = true, connect = true, send = true, sendall = true, recv = true, sendto = true,
  recvfrom = true, sendmsg = true, recvmsg = true, read = true, write = true, sleep = true,
  poll = true, wait = true, waitpid = true, flock = true, lock = true, getaddrinfo = true,
  getnameinfo = true, address = true, listen = true, close = true, --[[ SO_LINGER ]]
  ["channel.send"] = true, ["channel.recv"] = true, ["proc.close"] = true, spawn = true,
}

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
  "linger", "rcvbuf", "passcred", "error", "set", "cur", "end", "r+", "w+", "a+", "", "\0" }

-- ---- one batch, in a child ------------------------------------------------

local function batch(seed, progress, tmp)
  math.randomseed(seed)
  local rnd = math.random
  local function reader()
    local t = {}
    for i = 1, 512 do t[i] = string.char(rnd(0, 255)) end
    return R.new(table.concat(t))
  end

  -- the objects of this batch
  local pool, closeme = {}, {}
  local function add(o, cls) pool[#pool + 1] = { o = o, cls = cls }; return o end
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
  }

  -- the functions: module table, then methods per class
  local targets = {}
  local names = {}
  for k, v in pairs(ipc) do
    if type(v) == "function" and not SKIP[k] then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do targets[#targets + 1] = { name = k, f = ipc[k] } end
  local function methods(cls, obj, list)
    local mt = getmetatable(obj)
    local idx = mt and (type(mt.__index) == "table" and mt.__index or mt)
    local ms = {}
    for k, v in pairs(list or idx or {}) do if type(v) == "function" then ms[#ms + 1] = k end end
    for _, k in ipairs({ "__gc", "__close", "__tostring", "__len" }) do
      if mt and type(rawget(mt, k)) == "function" then ms[#ms + 1] = k end
    end
    table.sort(ms)
    for _, k in ipairs(ms) do
      local f = (list and list[k]) or (idx and idx[k]) or rawget(mt, k)
      targets[#targets + 1] = { name = cls .. "." .. k, f = f, cls = cls, m = k }
    end
  end
  methods("fd", pr, ipc._methods.fd)
  methods("socket", a, ipc._methods.socket)
  methods("channel", ch)
  methods("pollset", ps)
  if lk then methods("lock", lk) end
  if sig then methods("signal", sig) end
  if proc then methods("proc", proc) end
  methods("address", addr)

  local function pick(cls)
    local c = {}
    for _, p in ipairs(pool) do if p.cls == cls then c[#c + 1] = p.o end end
    return c[rnd(#c)]
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

  -- give a call that can wait a bound, or restrict what has process-wide effects
  local function tame(t, argv, n, r)
    local name, m = t.name, t.m
    if name == "kill" then argv[1] = r:pick({ 0x7fffffff, -0x7fffffff })
    elseif name == "sleep" then if type(argv[1]) == "number" then argv[1] = 0.001 end
    elseif name == "poll" then argv[2] = r:pick({ 0, 0.001 })
    elseif name == "waitpid" then if r:bit() then argv[2] = "nohang" end
    elseif name == "dup2" then argv[2] = pick(r:pick({ "fd", "socket" })) -- never the harness's pipe
    elseif name == "connect" then
      if argv[2] == nil then argv[2] = {} end
      if type(argv[2]) == "table" and getmetatable(argv[2]) == nil then argv[2].timeout = 0.05 end
    elseif name == "flock" or name == "lock" then
      local o = name == "flock" and 3 or 2
      if type(argv[o]) == "table" and getmetatable(argv[o]) == nil then argv[o].wait = r:pick({ false, 0, 0.01 }) end
      if argv[o] == nil then argv[o] = { wait = false } end
    elseif m == "read" and t.cls == "signal" then argv[2] = r:pick({ 0, 0.001 })
    elseif m == "wait" and t.cls == "pollset" then argv[2] = r:pick({ 0, 0.001 })
    elseif m == "close" and t.cls == "proc" then argv[2] = 0
    end
    -- a descriptor object about to wait gets a short timeout first
    if WAITS[m] and (t.cls == "fd" or t.cls == "socket" or t.cls == "channel") then
      local self = argv[1]
      if (type(self) == "userdata" or type(self) == "table") and self ~= iof and self ~= iodead then
        pcall(function() self:settimeout(0.01) end)
      end
    end
  end

  local function after(t, ok, res, res2)
    if not ok then return end
    -- a forked child must go at once; what a call made is closed
    if (t.name == "fork") and res == 0 then ipc._exit(0) end
    if t.name == "_forkrun" and res == 0 then ipc._exit(0) end
    if (t.name == "fork" or t.name == "_forkrun") and math.type(res) == "integer" and res > 0 then
      ipc.kill(res, "KILL"); ipc.waitpid(res)
    end
    for _, v in ipairs({ res, res2 }) do
      if type(v) == "userdata" or (type(v) == "table" and getmetatable(v) and v ~= addr) then
        closeme[#closeme + 1] = v
      end
    end
  end

  local r = reader()
  for i = 1, CALLS do
    if i % 16 == 0 then r = reader() end
    local t = targets[rnd(#targets)]
    local n = r:below(5)
    local argv = {}
    for k = 1, n do argv[k] = value(r) end
    if t.cls and rnd() < 0.7 then argv[1] = pick(t.cls) or argv[1]; if n < 1 then n = 1 end end
    tame(t, argv, 6, r)
    n = math.max(n, (t.name == "kill" or t.name == "dup2" or t.name == "poll") and 2 or 0)
    for k = n + 1, 6 do if argv[k] ~= nil then n = k end end
    progress(("%d %s\n"):format(i, describe(t, argv, n)))
    local ok, res, res2 = pcall(t.f, table.unpack(argv, 1, n))
    after(t, ok, res, res2)
    if #closeme > 20 then
      for _, o in ipairs(closeme) do pcall(function() o:close() end) end
      closeme = {}
    end
  end
  progress("done\n")
end

-- ---- the parent: batches and their verdicts ------------------------------

local CRASH = { SEGV = true, BUS = true, ILL = true, FPE = true, ABRT = true, SYS = true, TRAP = true }

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/unixipc-luafuzz.XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

local function runbatch(seed)
  local tmp = tmpdir()
  local r, w = assert(ipc.pipe())
  local pid = assert(ipc.fork())
  if pid == 0 then
    r:close()
    -- what the batch's calls print (spawned children's tracebacks) goes to
    -- a file, shown with a finding
    local log = ipc.open(tmp .. "/stderr", "w")
    ipc.dup2(log, 2)
    log:close()
    local ok, err = pcall(batch, seed, function(line) w:write(line) end, tmp)
    if not ok then pcall(w.write, w, "error " .. tostring(err):gsub("\n", " ") .. "\n") end
    ipc._exit(0)
  end
  w:close()
  local last, buf, calls, hang = "start", "", 0, nil
  while true do
    local ready = ipc.poll({ [r] = "r" }, HANG)
    if not ready[r] then hang = true; break end
    local s = r:read(65536)
    if not s then break end
    buf = buf .. s
    for line in buf:gmatch("([^\n]*)\n") do
      last = line
      if line:match("^%d+ ") then calls = calls + 1 end
    end
    buf = buf:match("[^\n]*$")
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
  end
  if verdict and verdict ~= "wait" then io.stderr:write(stderr:sub(-4000)) end
  return verdict, calls, last
end

local base = SEED or (os.time() % 100000) * 1000
local start = ipc.monotime()
local batches, calls, waits, findings, crashes, hangs = 0, 0, 0, {}, 0, 0
local waitnames = {}
local i = ONLYBATCH or 0
while true do
  local seed = base + i
  local verdict, n, last = runbatch(seed)
  batches, calls = batches + 1, calls + n
  if verdict == "wait" then
    waits = waits + 1
    local w = (last:match("^%d+ ([%w_.]+)%(") or last)
    waitnames[w] = (waitnames[w] or 0) + 1
    if os.getenv("LUAFUZZ_VERBOSE") then print("luafuzz: wait cut short (seed " .. seed .. "): " .. last) end
  elseif verdict then
    if verdict:match("^crash") then crashes = crashes + 1 else hangs = hangs + 1 end
    findings[#findings + 1] = ("%s (replay: lua5.4 check/luafuzz.lua --seed %d --batch 0)"):format(verdict, seed)
    print("luafuzz: FINDING " .. findings[#findings])
  end
  if last and last:match("^error ") then print("luafuzz: harness error: " .. last) end
  i = i + 1
  if ONLYBATCH or ipc.monotime() - start >= SECONDS then break end
end

-- the figures, and what was left out
local nt = 0
do -- count the targets as a child sees them
  for k, v in pairs(ipc) do if type(v) == "function" and not SKIP[k] then nt = nt + 1 end end
end
for k, why in pairs(SKIP) do print(("luafuzz: skipped %s: %s"):format(k, why)) end
for k, n in pairs(waitnames) do print(("luafuzz: documented wait cut short: %s (%d)"):format(k, n)) end
print(("luafuzz: %d calls in %d batches (%d module functions and every method), %d crashes, %d hangs, %d documented waits cut short, seed %d")
  :format(calls, batches, nt, crashes, hangs, waits, base))
os.exit(#findings == 0 and 0 or 1)
