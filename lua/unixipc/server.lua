-- unixipc.server: prefork servers over ipc.listen, ipc.spawn, channels and a
-- signal bridge, ready for a service manager.
--
--   local server = require "unixipc.server"
--   server.run{listen = "127.0.0.1:8080", workers = 4, mode = "shared",
--              concurrency = 256, handler = function(conn, addr) ... end}
--
-- The master is a supervisor and never runs the handler: it waits in one
-- ipc.poll over a signal bridge (CHLD, TERM, INT, HUP, USR2, TTIN, TTOU),
-- the workers' channels and, in "passfd" mode, the listeners. Workers are
-- ipc.spawn children: each ends in _exit, starts with the master's bridge
-- dropped (TERM has its default action there) and holds a channel to the
-- master whose end of stream means "finish what you have and exit".
--
-- mode "shared": every worker inherits the (non-blocking) listeners and
-- accepts itself. With the accept lock (default) only the worker holding it
-- waits on the listeners, so a connection wakes one worker instead of every
-- idle one (the thundering herd). The lock is a POSIX record lock (fcntl,
-- Apache's "fcntl" accept mutex) on an unlinked temporary file whose one
-- descriptor every worker inherits: POSIX locks belong to the process, so
-- one shared descriptor excludes workers from each other, and the kernel
-- drops the lock of a worker that dies.
--
-- mode "passfd": the master accepts and hands each connection to a worker
-- with a free slot over its channel (SCM_RIGHTS), then closes its copy; the
-- worker reports the slots its handlers free. Connections wait in the
-- listen backlog while every slot is taken.
--
-- concurrency = 1 (default): the classic prefork worker, one connection at
-- a time, the handler free to call anything that blocks. concurrency = n:
-- the worker runs unixipc.loop and serves up to n connections at once, one
-- task each; the handler is the same code, its unixipc calls yield to the
-- loop where they would wait. A shared-mode worker then takes the accept
-- lock only while it has a free slot, and never holds it while it is full.
--
-- Worker -> master messages: "up"; an integer k (passfd: k slots freed);
-- {"busy", peer} and "done" around a handler call (concurrency 1, shared
-- mode, with a timeout); {"tick", peers} (concurrency > 1 with a timeout:
-- the worker's loop is alive); "leaving" (shared mode: maxrequests reached,
-- the worker finishes what it has and exits). Master -> worker: a
-- connection (passfd), or end of stream.
--
-- The zero-downtime upgrade (SIGUSR2) and the systemd protocols are
-- described above `upgrade` and `notify` below, and in docs-server.md.
local ipc = require "unixipc"
local core = require "unixipc.core"
local check = require "unixipc.check"

local type, error, pcall, xpcall, tostring, tonumber, pairs, ipairs =
  type, error, pcall, xpcall, tostring, tonumber, pairs, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local fmt, concat, remove = string.format, table.concat, table.remove
local mtype, floor, random, huge = math.type, math.floor, math.random, math.huge
local traceback = debug.traceback
local stderr, getenv = io.stderr, os.getenv
local monotime, getpid = ipc.monotime, ipc.getpid

local errno = ipc.errno
local worker = require "unixipc.server.worker"
local TRANSIENT, peername = worker.TRANSIENT, worker.peername

local HEALTHY = 1.0       -- a worker that lived this long resets its slot's backoff
local BACKOFF_MIN = 0.1   -- first delay after a quick crash, doubled per crash
local KILL_WAIT = 1.0     -- after TERM, how long before KILL
local UPGRADE_WAIT = 60   -- how long a new master may take to report ready
local BACKLOG = 1024      -- listen(2) backlog of the listeners run() opens (the kernel caps it at somaxconn)
local SIGNALS = { "CHLD", "TERM", "INT", "HUP", "USR2", "TTIN", "TTOU" }
local UPGRADE_ENV = "UNIXIPC_UPGRADE_FD"

local M = { _VERSION = "unixipc.server 2", stopping = worker.stopping }

-- ---- arguments -------------------------------------------------------------

local OPTIONS = {}
for _, k in ipairs({ "listen", "workers", "handler", "mode", "acceptlock", "ready", "init",
  "maxrequests", "jitter", "log", "grace", "backoff", "backlog", "concurrency", "timeout",
  "upgrade", "pidfile" }) do
  OPTIONS[k] = true
end

-- errors blame the caller of run(): argerror -> bad -> checkopts -> run -> caller
local function bad(msg, ...)
  check.argerror(4, 1, "run", msg, ...)
end

local function issocket(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return mt and mt.__name == "unixipc.socket" or false
end

local function describetype(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  if mtype(v) then return tostring(v) end
  return type(v)
end

-- what is wrong with one listen entry (an address, string or table, or a
-- listening socket), or nil
local function badlisten(l, where)
  if issocket(l) then
    if not l:getoption("acceptconn") then return fmt("%s is a socket that is not listening", where) end
  elseif type(l) ~= "string" and type(l) ~= "table" then
    return fmt("%s must be an address, a listening socket or \"systemd\", got %s", where, describetype(l))
  end
end

local function checkopts(opts)
  if type(opts) ~= "table" then bad("options must be a table, got %s", type(opts)) end
  check.options(opts, 1, "run", OPTIONS, 3)
  local l = opts.listen
  if l == nil then bad("option 'listen' is required: an address, a listening socket or \"systemd\"") end
  if type(l) == "table" and l[1] ~= nil then -- a list of them
    for i, v in ipairs(l) do
      if v == "systemd" then bad("option 'listen': \"systemd\" cannot be part of a list") end
      local why = badlisten(v, fmt("option 'listen' [%d]", i))
      if why then bad("%s", why) end
    end
  elseif l ~= "systemd" then
    local why = badlisten(l, "option 'listen'")
    if why then bad("%s", why) end
  end
  if not check.callable(opts.handler) then
    bad("option 'handler' must be a function, got %s", type(opts.handler))
  end
  check.int(opts.workers, "workers", 1, 4096, 1, "run", 3)
  check.int(opts.concurrency, "concurrency", 1, 65536, 1, "run", 3)
  local mode = opts.mode
  if mode ~= nil and mode ~= "shared" and mode ~= "passfd" then
    bad("option 'mode' must be \"shared\" or \"passfd\", got %s", describetype(mode))
  end
  check.bool(opts.acceptlock, "acceptlock", 1, "run", 3)
  for _, k in ipairs({ "ready", "init" }) do
    if opts[k] ~= nil and not check.callable(opts[k]) then
      bad("option '%s' must be a function, got %s", k, type(opts[k]))
    end
  end
  if opts.log ~= nil and opts.log ~= false and not check.callable(opts.log) then
    bad("option 'log' must be a function or false, got %s", type(opts.log))
  end
  check.int(opts.maxrequests, "maxrequests", 1, math.maxinteger, 1, "run", 3)
  check.int(opts.jitter, "jitter", 0, math.maxinteger, 1, "run", 3)
  if opts.jitter ~= nil and opts.maxrequests == nil then
    bad("option 'jitter' needs option 'maxrequests'")
  end
  check.int(opts.backlog, "backlog", 1, 2147483647, 1, "run", 3)
  check.seconds(opts.grace, "grace", 1, "run", 3)
  check.seconds(opts.backoff, "backoff", 1, "run", 3)
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t > 0)) then
    bad("option 'timeout' must be a positive number of seconds, got %s", describetype(t))
  end
  local up = opts.upgrade
  if up ~= nil and up ~= false then
    local okcmd = type(up) == "table" and #up >= 1
    if okcmd then
      for i = 1, #up do okcmd = okcmd and type(up[i]) == "string" end
    end
    if not okcmd then
      bad("option 'upgrade' must be a command {\"program\", \"arg\", ...} or false, got %s", describetype(up))
    end
  end
  if opts.pidfile ~= nil and type(opts.pidfile) ~= "string" then
    bad("option 'pidfile' must be a path, got %s", describetype(opts.pidfile))
  end
  if opts.backlog ~= nil and (issocket(l) or l == "systemd") then
    bad("option 'backlog' cannot apply to a socket that is already listening")
  end
end

local function deflog(msg)
  stderr:write(fmt("unixipc.server[%d]: %s\n", getpid(), msg))
  stderr:flush()
end


-- ---- the master: sd_notify, pid file -------------------------------------------

-- sd_notify, when a service manager listens (NOTIFY_SOCKET). Only the
-- service's main process speaks: a master started by an upgrade stays
-- silent until its old master has handed over, and the old one is silent
-- from then on (no WATCHDOG=1 while its workers finish, no STOPPING=1).
local function notify(S, fields)
  if not S.notifysock or S.upfrom or S.upgraded then return end
  local ok, msg = ipc.notify(fields)
  if ok == nil and not S.notifyfailed then
    S.notifyfailed = true
    S.log("sd_notify failed: " .. tostring(msg))
  end
end

local function status(S)
  local addrs = {}
  for i, l in ipairs(S.listeners) do addrs[i] = tostring(l:getsockname()) end
  return fmt("%d worker%s (%s mode, concurrency %d) on %s", #S.slots, #S.slots == 1 and "" or "s",
    S.mode, S.concurrency, concat(addrs, ", "))
end

local function readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- the pid file is replaced whole (write, then rename), so a reader never
-- sees it half written
local function writepidfile(S)
  local path = S.pidfile
  if not path then return end
  local tmp = path .. ".tmp"
  local f, msg = io.open(tmp, "w")
  if f then
    local ok
    ok, msg = f:write(getpid(), "\n")
    f:close()
    if ok then
      ok, msg = os.rename(tmp, path)
      if ok then
        S.pidwritten = true
        return
      end
    end
    os.remove(tmp)
  end
  S.log("cannot write the pid file: " .. tostring(msg))
end

local function removepidfile(S)
  if S.pidwritten and not S.upgraded and tonumber(readfile(S.pidfile) or "") == getpid() then
    os.remove(S.pidfile)
  end
end

-- ---- the master: workers -------------------------------------------------------

-- a process that is our child but no ipc.spawn proc (a new master)
local PidProc = {}
PidProc.__index = PidProc
function PidProc:running()
  if self.how then return false end
  local pid, how, code = ipc.waitpid(self.pid, "nohang")
  if pid == 0 then return true end
  if not pid then return nil, how, code end
  self.how, self.code = how, code
  return false
end
function PidProc:wait()
  if not self.how then
    local pid, how, code = ipc.waitpid(self.pid)
    if not pid then return nil, how, code end
    self.how, self.code = how, code
  end
  return self.how == "exit" and self.code == 0 or nil, self.how, self.code
end
function PidProc:kill(sig)
  if self.how then return nil end
  return ipc.kill(self.pid, sig)
end

-- one more failure for this slot: when to try again. Failures in a row
-- double the delay from BACKOFF_MIN up to opts.backoff; a worker that had
-- lived HEALTHY seconds starts the count afresh (and is replaced at once).
local function backoff(S, slot, lived)
  if lived and lived >= HEALTHY then slot.fails = 0 end
  slot.fails = slot.fails + 1
  local delay = 0
  if slot.fails > 1 or not lived or lived < HEALTHY then
    delay = BACKOFF_MIN * 2 ^ (slot.fails - 1)
    if delay > S.backoff then delay = S.backoff end
  end
  slot.due = monotime() + delay
  return delay
end

local function limitof(S)
  local max = S.maxrequests
  if max and S.jitter and S.jitter > 0 then max = max + random(0, S.jitter) end
  return max
end

local function spawnslot(S, slot)
  local limit = limitof(S)
  local p, msg, err = ipc.spawn(worker.main, S, slot.id, limit)
  if not p then
    local delay = backoff(S, slot)
    S.log(fmt("cannot start worker %d: %s (errno %s); retrying in %.2fs",
      slot.id, tostring(msg), tostring(err), delay))
    return false
  end
  if slot.everstarted then S.respawned = S.respawned + 1 end
  slot.everstarted = true
  slot.proc, slot.chan, slot.started, slot.due = p, p.chan, monotime(), nil
  slot.up, slot.busy, slot.seen = false, nil, nil
  slot.free, slot.given, slot.limit = S.concurrency, 0, limit
  slot.gen = S.gen
  S.spawned = S.spawned + 1
  return true
end

local function newslot(S)
  S.lastid = S.lastid + 1
  local slot = { id = S.lastid, fails = 0 }
  S.slots[#S.slots + 1] = slot
  spawnslot(S, slot)
  return slot
end

-- this slot's worker finishes what it has and exits (its channel closed),
-- with grace seconds before TERM; with `respawn` the slot gets a new worker
-- at once. `termnow`: TERM at once, KILL_WAIT before KILL (a timed-out worker).
local function retire(S, slot, respawn, termnow)
  local p = slot.proc
  if slot.chan then slot.chan:close() end
  slot.proc, slot.chan, slot.up, slot.busy = nil, nil, false, nil
  if p then
    local r = { proc = p, id = slot.id, deadline = monotime() + (termnow and KILL_WAIT or S.grace) }
    if termnow then
      p:kill("TERM")
      r.termed = true
    end
    S.retiring[#S.retiring + 1] = r
  end
  if respawn and not S.stopping then
    slot.fails, slot.due = 0, monotime()
    spawnslot(S, slot)
  end
end

local function describe(how, code)
  if how == "signal" then return "killed by signal " .. (ipc.signals[code] or tostring(code)) end
  if how == "exit" then return "exited with status " .. tostring(code) end
  return tostring(how)
end

-- a slot's worker has ended: forget it and, unless stopping, schedule its
-- successor
local function ended(S, slot, how, code)
  local p = slot.proc
  if slot.chan then slot.chan:close() end
  slot.proc, slot.chan, slot.up, slot.busy = nil, nil, false, nil
  if S.stopping then return end
  local lived = monotime() - slot.started
  if how == "exit" and code == 0 then
    slot.fails, slot.due = 0, monotime() -- planned (maxrequests): no delay
    return
  end
  S.crashed = S.crashed + 1
  local delay = backoff(S, slot, lived)
  S.log(fmt("worker %d (pid %d) %s; restarting in %.2fs", slot.id, p.pid, describe(how, code), delay))
end

local readupgrade -- below, with the upgrade

local function endupgrade(S, why)
  local u = S.upgrading
  S.upgrading = nil
  if u.chan then u.chan:close() end
  S.log("upgrade failed: " .. why .. "; the old master keeps serving")
  notify(S, { STATUS = "upgrade failed: " .. why .. "; " .. status(S) })
  if u.proc:running() then
    u.proc:kill("TERM")
    S.retiring[#S.retiring + 1] = { proc = u.proc, deadline = monotime() + KILL_WAIT, termed = true }
  end
end

-- reap what has ended among our children: workers, retired workers, a new
-- master (other children of this process are left alone)
local function reap(S)
  for _, slot in ipairs(S.slots) do
    local p = slot.proc
    if p then
      local running, msg, err = p:running()
      if running == false then
        local _, how, code = p:wait()
        ended(S, slot, how, code)
      elseif running == nil then -- somebody else reaped it (waitpid(-1))
        ended(S, slot, "unknown (" .. tostring(msg) .. ", errno " .. tostring(err) .. ")")
      end
    end
  end
  local i = 1
  while S.retiring[i] do
    if S.retiring[i].proc:running() ~= true then
      S.retiring[i].proc:wait()
      remove(S.retiring, i)
    else
      i = i + 1
    end
  end
  local u = S.upgrading
  if u and u.proc:running() == false then
    -- what it reported before it ended (an exec failure) says more than its status
    if u.chan and ipc.poll({ [u.chan] = "r" }, 0)[u.chan] then readupgrade(S) end
    if S.upgrading == u then
      local _, how, code = u.proc:wait()
      endupgrade(S, fmt("the new master (pid %d) %s before it was ready", u.proc.pid, describe(how, code)))
    end
  end
end

-- ---- the master: passfd hand-off -------------------------------------------------

-- the worker with the most free slots (ties: the one after the last chosen)
local function pickslot(S)
  local slots, best, bestfree = S.slots, nil, 0
  local n = #slots
  local start = S.rr or 0
  for k = 1, n do
    local i = (start + k - 1) % n + 1
    local slot = slots[i]
    if slot.chan and slot.free > bestfree then
      best, bestfree = i, slot.free
    end
  end
  if best then
    S.rr = best
    return slots[best]
  end
end

local function freeslots(S)
  local total = 0
  for _, slot in ipairs(S.slots) do
    if slot.chan then total = total + slot.free end
  end
  return total
end

local function dispatch(S)
  local pending = S.pending
  while pending[1] do
    local slot = pickslot(S)
    if not slot then return end
    local conn = pending[1]
    local ok, msg = slot.chan:send(true, { conn })
    if ok then
      remove(pending, 1)
      if S.timeout and S.concurrency == 1 then
        slot.busy = { since = monotime(), peer = peername(conn:getpeername()) }
      end
      conn:close()
      S.connections = S.connections + 1
      slot.free = slot.free - 1
      slot.given = slot.given + 1
      if slot.limit and slot.given >= slot.limit then
        -- this worker has had its share: it finishes, a new one takes its place
        retire(S, slot, true)
      end
    else -- the worker is gone; its CHLD follows. Try another one.
      S.log(fmt("cannot hand a connection to worker %d: %s", slot.id, tostring(msg)))
      slot.chan:close()
      slot.chan = nil
    end
  end
end

local function acceptall(S, ready)
  for _, srv in ipairs(S.listeners) do
    if ready[srv] then
      while #S.pending < freeslots(S) do
        local conn, msg, err = srv:accept()
        if not conn then
          if not TRANSIENT[err] then -- EMFILE and friends: log, and do not spin on them
            S.log("accept failed: " .. tostring(msg))
            S.acceptpause = monotime() + 0.05
          end
          break
        end
        S.pending[#S.pending + 1] = conn
        dispatch(S)
      end
    end
  end
end

-- ---- the master: messages from workers ---------------------------------------------

local startup

local function onmessage(S, slot, msg)
  local t = type(msg)
  if mtype(msg) == "integer" then
    slot.free = slot.free + msg
    slot.busy = nil
  elseif msg == "up" then
    slot.up = true
    slot.seen = monotime()
  elseif msg == "done" then
    slot.busy = nil
  elseif msg == "leaving" then
    retire(S, slot, true)
  elseif t == "table" and msg[1] == "busy" then
    slot.busy = { since = monotime(), peer = tostring(msg[2]) }
  elseif t == "table" and msg[1] == "tick" then
    slot.peers = msg[2]
  end
  if slot.chan then slot.seen = monotime() end
end

local function readchan(S, slot)
  local chan = slot.chan
  while true do
    local msg = chan:recv()
    if msg == nil then -- end of stream: the worker ended or is ending
      if slot.chan == chan then
        chan:close()
        slot.chan = nil
      end
      return
    end
    onmessage(S, slot, msg)
    if slot.chan ~= chan then return end -- retired meanwhile
    local more = ipc.poll({ [chan] = "r" }, 0)
    if not more[chan] then return end
  end
end

-- ---- the master: signals -------------------------------------------------------------

local function upgrade(S) end -- defined below

-- graceful restart (HUP): every current worker finishes what it is doing
-- and exits, while a new one takes its slot at once
local function restart(S)
  S.log("restarting workers")
  S.gen = S.gen + 1
  S.reloading = true
  notify(S, { RELOADING = 1, MONOTONIC_USEC = floor(monotime() * 1e6), STATUS = "reloading workers" })
  for _, slot in ipairs(S.slots) do retire(S, slot, true) end
end

local function addworker(S)
  newslot(S)
  S.workers = S.workers + 1
  S.log(fmt("one more worker: %d", S.workers))
  notify(S, { STATUS = status(S) })
end

local function removeworker(S)
  if S.workers <= 1 then
    S.log("TTOU ignored: one worker is the minimum")
    return
  end
  retire(S, remove(S.slots), false) -- the last one: it finishes what it has
  S.workers = S.workers - 1
  S.log(fmt("one worker less: %d", S.workers))
  notify(S, { STATUS = status(S) })
end

local function handlesignals(S)
  while true do
    local info = S.sig:read(0)
    if not info then return end
    local name = info.name
    if name == "CHLD" then
      reap(S)
    elseif S.stopping then
      if name == "TERM" or name == "INT" then S.deadline = monotime() end -- no more grace
    elseif name == "HUP" then
      restart(S)
    elseif name == "USR2" then
      upgrade(S)
    elseif name == "TTIN" then
      addworker(S)
    elseif name == "TTOU" then
      removeworker(S)
    else
      S.stopping, S.signal = true, name
    end
  end
end

-- ---- the master: zero-downtime upgrade ---------------------------------------------------
--
-- USR2: the master forks and executes its own program again (the command
-- line it was started with, from /proc/self/cmdline, or opts.upgrade)
-- with its listeners on descriptors 3, 4, ... announced by LISTEN_FDS,
-- LISTEN_PID and LISTEN_FDNAMES, and one end of a socketpair on the next
-- descriptor, named by UNIXIPC_UPGRADE_FD. The new program's server.run
-- takes those listeners instead of binding again (listen = "systemd" takes
-- them all, an address takes the one bound there), starts its workers
-- and reports {ready = pid} over the socketpair. The old master then
-- tells the service manager MAINPID=<new pid>, closes the socketpair (the
-- new master, seeing end of stream, becomes the main process: READY=1 and
-- its pid file) and stops the way TERM stops it, without STOPPING=1: its
-- workers finish their connections, and run() returns with signal "USR2"
-- and `upgraded` = the new pid. The listening sockets never close, so no
-- connection is refused. If the new program cannot be executed, fails
-- before it is ready or takes longer than UPGRADE_WAIT, the old master
-- logs why, stops it, and goes on serving.

local function cmdline()
  local s = readfile("/proc/self/cmdline")
  if not s or s == "" then return nil end
  local argv = {}
  for a in s:gmatch("([^\0]*)\0") do argv[#argv + 1] = a end
  return argv
end

-- in the forked child: listeners to 3, 4, ..., the socketpair end after
-- them, the variables set, exec; a failure goes back over the socketpair
local function execnew(S, cmd, theirs)
  local srcs = {}
  for i, l in ipairs(S.listeners) do srcs[i] = l end
  srcs[#srcs + 1] = theirs
  local n = #srcs
  -- first out of the way (above every open descriptor), then into place
  local top = 3 + n
  for fd in pairs(core._openfds()) do
    if fd >= top then top = fd + 1 end
  end
  local tmp = {}
  for i, o in ipairs(srcs) do
    assert(ipc.dup2(o, top + i))
    tmp[i] = assert(ipc.fdopen(top + i))
  end
  for i, o in ipairs(tmp) do
    assert(ipc.dup2(o, 2 + i))
    o:close()
  end
  local report = ipc.channel(assert(ipc.fdopen(2 + n)))
  local names = {}
  for i, l in ipairs(S.listeners) do names[i] = S.names[i] or ("listener" .. i) end
  ipc.setenv("LISTEN_FDS", tostring(n - 1))
  ipc.setenv("LISTEN_PID", tostring(getpid()))
  ipc.setenv("LISTEN_FDNAMES", concat(names, ":"))
  ipc.setenv(UPGRADE_ENV, tostring(2 + n))
  if getenv("WATCHDOG_USEC") then ipc.setenv("WATCHDOG_PID", tostring(getpid())) end
  local argv = { [0] = cmd[1] }
  for i = 2, #cmd do argv[i - 1] = cmd[i] end
  local _, msg = ipc.exec(cmd[1], argv)
  report:send({ error = tostring(msg) })
  ipc._exit(127)
end

upgrade = function(S)
  if S.upgrading then
    S.log("USR2 ignored: an upgrade is already under way (new master pid " .. S.upgrading.proc.pid .. ")")
    return
  end
  if S.upfrom then
    S.log("USR2 ignored: this master is still taking over from the old one")
    return
  end
  if S.upgradecmd == false then
    S.log("USR2 ignored: upgrades are disabled (upgrade = false)")
    return
  end
  local cmd = S.upgradecmd or cmdline()
  if not cmd then
    S.log("upgrade failed: cannot read this program's command line (/proc/self/cmdline); "
      .. "give the command as the option 'upgrade'")
    return
  end
  local mine, theirs, err = ipc.socketpair("stream")
  if not mine then
    S.log("upgrade failed: socketpair: " .. tostring(theirs))
    return
  end
  local pid, msg
  pid, msg, err = core._forkrun(execnew, S, cmd, theirs)
  theirs:close()
  if not pid then
    mine:close()
    S.log("upgrade failed: fork: " .. tostring(msg))
    return
  end
  S.upgrading = { proc = setmetatable({ pid = pid }, PidProc), chan = ipc.channel(mine),
    deadline = monotime() + UPGRADE_WAIT }
  S.log(fmt("upgrading: started %s as pid %d", concat(cmd, " "), pid))
  notify(S, { STATUS = fmt("upgrading: new master pid %d starting", pid) })
end

-- the new master's report over the socketpair
readupgrade = function(S)
  local u = S.upgrading
  local msg = u.chan:recv()
  if type(msg) == "table" and mtype(msg.ready) == "integer" then
    -- hand over: the new master is the service now
    S.log(fmt("upgrade: the new master (pid %d) is ready; handing over", msg.ready))
    notify(S, { MAINPID = msg.ready, STATUS = fmt("handing over to the new master, pid %d", msg.ready) })
    u.chan:close()
    S.upgrading = nil
    S.upgraded = msg.ready
    S.stopping, S.signal = true, "USR2"
  elseif type(msg) == "table" and msg.error then
    endupgrade(S, tostring(msg.error))
  elseif msg == nil then
    local running = u.proc:running()
    if running == false then
      local _, how, code = u.proc:wait()
      endupgrade(S, fmt("the new master (pid %d) %s before it was ready", u.proc.pid, describe(how, code)))
    else
      u.chan:close()
      u.chan = nil -- it will still be reaped, or time out
    end
  end
end

-- this master was started by an upgrade: the socketpair to the old one
local function takeupgrade()
  local fd = getenv(UPGRADE_ENV)
  if not fd then return nil end
  ipc.unsetenv(UPGRADE_ENV)
  fd = tonumber(fd)
  local lpid = tonumber(getenv("LISTEN_PID") or "")
  if not fd or mtype(fd) ~= "integer" or lpid ~= getpid() then return nil end
  local s = ipc.fdopen(fd)
  if not s then return nil end
  s:setcloexec(true)
  return ipc.channel(s)
end

-- ---- the master: the loop ---------------------------------------------------------

-- once every first worker has said "up" (or has crashed: a worker that
-- cannot start does not hold the announcement back): ready(info), the pid
-- file, READY=1 -- or, started by an upgrade, {ready = pid} to the old
-- master, which hands over
startup = function(S)
  local pids = {}
  for i, slot in ipairs(S.slots) do
    if not slot.up and slot.fails == 0 then return end
    pids[i] = slot.proc and slot.proc.pid or false
  end
  S.starting = false
  local name = S.listeners[1]:getsockname()
  local addrs = {}
  for i, l in ipairs(S.listeners) do addrs[i] = tostring(l:getsockname()) end
  if S.upfrom then
    local ok = S.upfrom:send({ ready = getpid() })
    if not ok then S.upfrom:close() S.upfrom = nil end
  end
  if not S.upfrom then
    writepidfile(S)
    notify(S, { READY = 1, STATUS = status(S) })
  end
  if S.ready then
    S.ready({
      addr = name, address = tostring(name), port = name.port, path = name.path,
      addresses = addrs, pid = getpid(), pids = pids, mode = S.mode, workers = S.workers,
      concurrency = S.concurrency,
    })
  end
end

-- after HUP: READY=1 once every slot has a worker of this generation up
local function reloaded(S)
  for _, slot in ipairs(S.slots) do
    if (slot.gen ~= S.gen or not slot.up) and slot.fails == 0 then return end
  end
  S.reloading = false
  S.log("workers restarted")
  notify(S, { READY = 1, STATUS = status(S) })
end

-- the old master has handed over (or is gone): this one is the service
local function takeover(S)
  S.upfrom:close()
  S.upfrom = nil
  S.log("took over from the old master")
  if not S.starting then
    writepidfile(S)
    notify(S, { READY = 1, MAINPID = getpid(), STATUS = status(S) })
  end
end

-- timers: what is due now, and how long until the next thing
local function timers(S, now)
  local nextt
  local function at(t)
    if t and (not nextt or t < nextt) then nextt = t end
  end
  for _, slot in ipairs(S.slots) do
    if slot.due and not slot.proc and not S.stopping then
      if slot.due <= now then spawnslot(S, slot) else at(slot.due) end
    end
    local tmo = S.timeout
    if tmo and slot.proc then
      if slot.busy then -- one handler call (concurrency 1)
        local t = slot.busy.since + tmo
        if t <= now then
          S.timedout = S.timedout + 1
          S.log(fmt("worker %d (pid %d) spent more than %gs on a connection from %s: killed",
            slot.id, slot.proc.pid, tmo, slot.busy.peer))
          retire(S, slot, true, true)
        else
          at(t)
        end
      elseif S.concurrency > 1 and slot.up and slot.seen then -- its loop answers
        local t = slot.seen + tmo
        if t <= now then
          S.timedout = S.timedout + 1
          local peers = slot.peers and #slot.peers > 0 and concat(slot.peers, ", ") or "none"
          S.log(fmt("worker %d (pid %d) has not answered for %gs (a handler that never yields?): "
            .. "killed; connections in hand at its last report: %s", slot.id, slot.proc.pid, tmo, peers))
          retire(S, slot, true, true)
        else
          at(t)
        end
      end
    end
  end
  for _, r in ipairs(S.retiring) do
    if r.deadline <= now then
      if not r.killed then
        r.proc:kill(r.termed and "KILL" or "TERM")
        r.killed, r.termed = r.termed, true
        r.deadline = now + KILL_WAIT
      end
    end
    if not r.killed then at(r.deadline) end
  end
  local u = S.upgrading
  if u then
    if u.deadline <= now then
      endupgrade(S, fmt("the new master (pid %d) was not ready after %ds", u.proc.pid, UPGRADE_WAIT))
    else
      at(u.deadline)
    end
  end
  if S.wdinterval then
    if S.wdnext <= now then
      notify(S, "WATCHDOG=1")
      S.wdnext = now + S.wdinterval
    end
    at(S.wdnext)
  end
  if S.acceptpause then
    if S.acceptpause <= now then S.acceptpause = nil else at(S.acceptpause) end
  end
  return nextt and math.max(0, nextt - now) or nil
end

local function mainloop(S)
  local sig, passfd = S.sig, S.mode == "passfd"
  for _ = 1, S.workers do newslot(S) end
  while not S.stopping do
    if S.starting then startup(S) end
    if S.reloading then reloaded(S) end
    local timeout = timers(S, monotime())
    local set = { [sig] = "r" }
    for _, slot in ipairs(S.slots) do
      if slot.chan then set[slot.chan] = "r" end
    end
    if S.upgrading and S.upgrading.chan then set[S.upgrading.chan] = "r" end
    if S.upfrom then set[S.upfrom] = "r" end
    if passfd and not S.acceptpause and #S.pending < freeslots(S) then
      for _, l in ipairs(S.listeners) do set[l] = "r" end
    end
    local ready = ipc.poll(set, timeout)
    if ready[sig] then handlesignals(S) end
    if S.stopping then break end
    for _, slot in ipairs(S.slots) do
      if slot.chan and ready[slot.chan] then readchan(S, slot) end
    end
    if S.upgrading and S.upgrading.chan and ready[S.upgrading.chan] then readupgrade(S) end
    if S.upfrom and ready[S.upfrom] then takeover(S) end
    if passfd then
      dispatch(S)
      acceptall(S, ready)
    end
  end
end

-- stop: no more accepting, every worker told to finish (channel closed),
-- grace seconds for them to do so, then TERM, then KILL; all reaped
local function shutdown(S)
  S.stopping = true
  notify(S, { STOPPING = 1, STATUS = "stopping" .. (S.signal and (" (SIG" .. S.signal .. ")") or "") })
  for _, c in ipairs(S.pending) do c:close() end
  S.pending = {}
  if S.upgrading then endupgrade(S, "the server is stopping") end
  if S.upfrom then S.upfrom:close() S.upfrom = nil end
  for _, slot in ipairs(S.slots) do retire(S, slot, false) end
  local now = monotime()
  for _, r in ipairs(S.retiring) do
    local d = S.deadline and S.deadline < now + S.grace and S.deadline or now + S.grace
    if not r.termed and r.deadline > d then r.deadline = d end
  end
  while S.retiring[1] do
    local nextt = timers(S, monotime())
    local all = true
    for _, r in ipairs(S.retiring) do all = all and r.killed end
    if all then break end
    local ready = ipc.poll({ [S.sig] = "r" }, nextt and (nextt < 0.2 and nextt or 0.2) or 0.2)
    if ready[S.sig] then
      handlesignals(S)
      if S.deadline then -- a second TERM/INT: no more grace
        for _, r in ipairs(S.retiring) do
          if r.deadline > S.deadline then r.deadline = S.deadline end
        end
        S.deadline = nil
      end
    end
    reap(S)
  end
  for _, r in ipairs(S.retiring) do r.proc:wait() end -- KILLed: reaping cannot take long
  S.retiring = {}
end

-- ---- run -----------------------------------------------------------------------

local function release(S)
  if S.sig then S.sig:close() S.sig = nil end
  if S.lockfd then S.lockfd:close() S.lockfd = nil end
  if S.upfrom then S.upfrom:close() S.upfrom = nil end
  for _, l in ipairs(S.owned) do
    if S.upgraded then core._bound(l, false) end -- the path stays: the new master listens on it
    l:close()
  end
  S.owned = {}
end

-- an unlinked temporary file for the accept lock, opened once, inherited
local function lockfile()
  local name = os.tmpname()
  local f, msg, err = ipc.open(name, "r+")
  os.remove(name)
  return f, msg, err
end

-- does an inherited listener stand for the address asked? (port 0 asks
-- for any port of that host)
local function matches(sock, want)
  local have = sock:getsockname()
  if not have then return false end
  local a = type(want) == "table" and want or nil
  if not a then
    local host, port = want:match("^%[(.*)%]:(%d+)$")
    if not host then host, port = want:match("^([^:]*):(%d+)$") end
    if want:sub(1, 1) == "@" then
      a = { family = "unix", abstract = want:sub(2) }
    elseif want:find("/", 1, true) then
      a = { family = "unix", path = want }
    elseif host then
      a = { host = host, port = tonumber(port) }
    else
      return false
    end
  end
  if a.path then return have.path == a.path end
  if a.abstract then return have.abstract == a.abstract end
  if have.family ~= "inet" and have.family ~= "inet6" then return false end
  local port = tonumber(a.port)
  if port ~= 0 and port ~= have.port then return false end
  local host = a.host
  if host == nil or host == "" or host == "*" then host = have.family == "inet6" and "::" or "0.0.0.0" end
  if host == "localhost" then return have.host == "127.0.0.1" or have.host == "::1" end
  return host == have.host
end

-- the listeners: opened here (ours to close, their unix paths removed when
-- we stop), given (left open), or inherited (systemd, an old master)
local function openlisteners(S, opts, up)
  local l = opts.listen
  local inherited, names = {}, {}
  if l == "systemd" or up then
    local objs, nms, err = ipc.listenfds()
    if not objs then return nil, nms, err end
    inherited, names = objs, nms
  end
  if l == "systemd" then
    if #inherited == 0 then
      return nil, "listen systemd: no listening socket was passed (LISTEN_FDS unset, or meant for another process)",
        errno.EINVAL
    end
    for i, s in ipairs(inherited) do
      if not issocket(s) or not s:getoption("acceptconn") then
        for _, o in ipairs(inherited) do o:close() end
        return nil, fmt("listen systemd: descriptor %d (%s) is not a listening stream socket",
          2 + i, tostring(names[i])), errno.ENOTSOCK
      end
      S.listeners[i], S.names[i] = s, names[i]
      S.owned[#S.owned + 1] = s
    end
    return true
  end
  local list = (type(l) == "table" and l[1] ~= nil) and l or { l }
  local used = {}
  for _, want in ipairs(list) do
    if issocket(want) then
      S.listeners[#S.listeners + 1] = want
    else
      local got
      for i, s in ipairs(inherited) do
        if not used[i] and issocket(s) and s:getoption("acceptconn") and matches(s, want) then
          used[i], got = true, s
          S.names[#S.listeners + 1] = names[i]
          -- our own path again, in the new master: removed when it stops
          local path = s:getsockname().path
          if path then core._bound(s, path) end
          break
        end
      end
      if not got then
        local msg, err
        got, msg, err = ipc.listen(want, { backlog = opts.backlog or BACKLOG, unlink = true })
        if not got then
          for i, o in ipairs(inherited) do if not used[i] then o:close() end end
          return nil, msg, err
        end
      end
      S.listeners[#S.listeners + 1] = got
      S.owned[#S.owned + 1] = got
    end
  end
  for i, o in ipairs(inherited) do if not used[i] then o:close() end end
  return true
end

function M.run(opts)
  checkopts(opts)
  local S = {
    handler = opts.handler, mode = opts.mode or "shared", workers = opts.workers or 4,
    concurrency = opts.concurrency or 1, timeout = opts.timeout,
    ready = opts.ready, init = opts.init, maxrequests = opts.maxrequests, jitter = opts.jitter,
    log = opts.log == false and function() end or opts.log or deflog,
    grace = opts.grace or 5, backoff = opts.backoff or 5, upgradecmd = opts.upgrade,
    pidfile = opts.pidfile,
    listeners = {}, names = {}, owned = {}, slots = {}, retiring = {}, pending = {},
    lastid = 0, gen = 0, starting = true,
    spawned = 0, respawned = 0, crashed = 0, timedout = 0, connections = 0,
    notifysock = getenv("NOTIFY_SOCKET") ~= nil,
  }
  S.upfrom = takeupgrade()
  local function fail(msg, err)
    if S.upfrom then S.upfrom:send({ error = msg }) end
    release(S)
    return nil, msg, err
  end
  local ok, msg, err = openlisteners(S, opts, S.upfrom)
  if not ok then return fail(msg, err) end
  local okb, e = pcall(ipc.signalfd, SIGNALS)
  if not okb then -- another live bridge holds one of them: misuse
    release(S)
    e = tostring(e)
    error("run: cannot take over the signals it needs (" .. concat(SIGNALS, ", ") .. "): "
      .. (e:match("^bad argument #%d+ to '[^']*' %((.*)%)$") or e), 2)
  end
  S.sig = e
  if S.mode == "shared" and opts.acceptlock ~= false and S.workers > 1 then
    S.lockfd, msg, err = lockfile()
    if not S.lockfd then return fail(msg, err) end
  end
  -- the listeners are shared by every process that accepts on them: none
  -- of them may block in accept for a connection another one took
  for _, l in ipairs(S.listeners) do l:setnonblocking(true) end
  local wd = tonumber(getenv("WATCHDOG_USEC") or "")
  local wdpid = tonumber(getenv("WATCHDOG_PID") or "")
  if wd and wd > 0 and (not wdpid or wdpid == getpid()) then
    S.wdinterval = wd / 2e6
    S.wdnext = monotime()
  end
  local trace
  local okloop, lerr = xpcall(mainloop, function(x)
    trace = traceback(tostring(x), 2)
    return x
  end, S)
  if not okloop then S.log("supervisor error, stopping the workers: " .. trace) end
  local okstop, serr = pcall(shutdown, S)
  removepidfile(S)
  release(S)
  if not okloop then error(lerr, 0) end
  if not okstop then error(serr, 0) end
  return {
    signal = S.signal, mode = S.mode, workers = S.workers, spawned = S.spawned,
    respawned = S.respawned, crashed = S.crashed, timedout = S.timedout,
    connections = S.mode == "passfd" and S.connections or nil, upgraded = S.upgraded,
  }
end

return M
