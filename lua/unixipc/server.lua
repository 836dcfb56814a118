-- unixipc.server: prefork servers over ipc.listen, ipc.spawn, channels and a
-- signal bridge.
--
--   local server = require "unixipc.server"
--   server.run{listen = "127.0.0.1:8080", workers = 4, mode = "shared",
--              handler = function(conn, addr) ... end}
--
-- The parent is a supervisor and never runs the handler: it waits in one
-- ipc.poll over a signal bridge (CHLD, TERM, INT, HUP), the workers'
-- channels and, in "passfd" mode, the listener. Workers are ipc.spawn
-- children: each ends in _exit, starts with the parent's signal bridge
-- dropped (TERM and INT have their default action there) and holds a
-- channel to the parent whose end of stream means "finish and exit".
--
-- mode "shared": every worker inherits the (non-blocking) listener and
-- loops poll -> accept -> handler -> close. With the accept lock (default)
-- only the worker holding it waits on the listener, so a connection wakes
-- one worker instead of all idle ones (the thundering herd). The lock is a
-- POSIX record lock (fcntl F_SETLKW, Apache's "fcntl" accept mutex) on an
-- unlinked temporary file whose one descriptor every worker inherits: POSIX
-- locks belong to the process, so one shared descriptor excludes workers
-- from each other, and the kernel drops the lock of a worker that dies.
--
-- mode "passfd": the parent accepts and hands each connection to an idle
-- worker over its channel (SCM_RIGHTS), then closes its copy; the worker
-- answers "idle" when it is done. Exactly one connection per worker at a
-- time; connections wait in the listen backlog while every worker is busy.
local ipc = require "unixipc"

local type, error, pcall, xpcall, tostring, pairs, ipairs =
  type, error, pcall, xpcall, tostring, pairs, ipairs
local getmetatable = getmetatable
local fmt, mtype, traceback = string.format, math.type, debug.traceback
local remove = table.remove
local stderr = io.stderr

local errno = ipc.errno
-- accept failures that only mean "nothing for you this time": another
-- worker took the connection, or the client gave up before accept
local TRANSIENT = {}
for _, name in ipairs({ "EAGAIN", "EWOULDBLOCK", "EINTR", "ECONNABORTED", "EPROTO" }) do
  if errno[name] then TRANSIENT[errno[name]] = true end
end

local HEALTHY = 1.0       -- a worker that lived this long resets its slot's backoff
local BACKOFF_MIN = 0.1   -- first delay after a quick crash, doubled per crash
local KILL_WAIT = 1.0     -- after TERM, how long before KILL

-- ---- arguments -------------------------------------------------------------

local OPTIONS = {
  listen = true, workers = true, handler = true, mode = true, acceptlock = true,
  ready = true, init = true, maxrequests = true, log = true, grace = true,
  backoff = true, backlog = true,
}

local function argerror(msg, ...)
  error(fmt("bad argument #1 to 'run' (" .. msg .. ")", ...), 4)
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

local function issocket(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return mt and mt.__name == "unixipc.socket"
end

local function checkopts(opts)
  if type(opts) ~= "table" then argerror("table expected, got %s", type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS[k] then argerror("unknown option '%s'", tostring(k)) end
  end
  local l = opts.listen
  if l == nil then argerror("opts.listen is required (an address or a listening socket)") end
  if type(l) ~= "string" and type(l) ~= "table" and not issocket(l) then
    argerror("opts.listen must be an address (string or table) or a unixipc socket, got %s", type(l))
  end
  if issocket(l) and not l:getoption("acceptconn") then
    argerror("opts.listen is a socket that is not listening")
  end
  if not callable(opts.handler) then
    argerror("opts.handler must be a function, got %s", type(opts.handler))
  end
  local w = opts.workers
  if w ~= nil and (mtype(w) ~= "integer" or w < 1 or w > 4096) then
    argerror("opts.workers must be an integer from 1 to 4096, got %s", tostring(w))
  end
  local mode = opts.mode
  if mode ~= nil and mode ~= "shared" and mode ~= "passfd" then
    argerror("opts.mode must be \"shared\" or \"passfd\", got %s", tostring(mode))
  end
  if opts.acceptlock ~= nil and type(opts.acceptlock) ~= "boolean" then
    argerror("opts.acceptlock must be a boolean, got %s", type(opts.acceptlock))
  end
  for _, k in ipairs({ "ready", "init" }) do
    if opts[k] ~= nil and not callable(opts[k]) then
      argerror("opts.%s must be a function, got %s", k, type(opts[k]))
    end
  end
  if opts.log ~= nil and opts.log ~= false and not callable(opts.log) then
    argerror("opts.log must be a function or false, got %s", type(opts.log))
  end
  for _, k in ipairs({ "maxrequests", "backlog" }) do
    local v = opts[k]
    if v ~= nil and (mtype(v) ~= "integer" or v < 1) then
      argerror("opts.%s must be a positive integer, got %s", k, tostring(v))
    end
  end
  if opts.grace ~= nil and (type(opts.grace) ~= "number" or not (opts.grace >= 0)) then
    argerror("opts.grace must be a non-negative number of seconds, got %s", tostring(opts.grace))
  end
  if opts.backoff ~= nil and (type(opts.backoff) ~= "number" or not (opts.backoff >= 0)) then
    argerror("opts.backoff must be a non-negative number of seconds, got %s", tostring(opts.backoff))
  end
  if opts.backlog ~= nil and issocket(l) then
    argerror("opts.backlog cannot apply to a socket that is already listening")
  end
end

local function deflog(msg)
  stderr:write(fmt("unixipc.server[%d]: %s\n", ipc.getpid(), msg))
  stderr:flush()
end

-- ---- workers -----------------------------------------------------------------

-- run the handler on one connection; errors are logged, never fatal
local function serve(S, conn, addr)
  local ok, err = xpcall(S.handler, traceback, conn, addr)
  if not ok then S.log(fmt("handler error (worker %d): %s", ipc.getpid(), tostring(err))) end
  conn:close()
end

local sleep = ipc.sleep

-- an accept failure that is not "someone else took it": log and breathe, so
-- EMFILE and friends do not turn into a busy loop
local function accepterror(S, msg, err)
  if TRANSIENT[err] then return end
  S.log(fmt("accept failed in worker %d: %s", ipc.getpid(), tostring(msg)))
  sleep(0.05)
end

local function sharedworker(S, chan)
  local srv, lockfd, max = S.listener, S.lockfd, S.maxrequests
  local set, served = { [srv] = "r", [chan] = "r" }, 0
  while true do
    local lk
    if lockfd then
      local msg, err
      lk, msg, err = ipc.lock(lockfd, { type = "write" })
      if not lk then error(fmt("accept lock: %s (errno %s)", tostring(msg), tostring(err)), 0) end
    end
    local ready = ipc.poll(set)
    if ready[chan] then -- the parent closed its end (or wrote): stop
      if lk then lk:release() end
      return
    end
    local conn, addr, err
    if ready[srv] then conn, addr, err = srv:accept() end
    if lk then lk:release() end
    if conn then
      serve(S, conn, addr)
      served = served + 1
      if max and served >= max then return end
    elseif ready[srv] then
      accepterror(S, addr, err)
    end
  end
end

local function passfdworker(S, chan)
  local max, served = S.maxrequests, 0
  while true do
    local msg, fds = chan:recv()
    if msg == nil then return end -- end of stream: the parent wants us gone
    local conn = fds[1]
    for i = 2, #fds do fds[i]:close() end
    if conn then
      serve(S, conn, conn:getpeername() or {})
      served = served + 1
      if max and served >= max then return end -- exit without asking for more
    end
    if not chan:send("idle") then return end
  end
end

-- the body of a worker process (ipc.spawn has dropped the signal bridge)
local function workermain(chan, S, id)
  -- copies of the parent's ends of the other workers' channels: a worker
  -- holding them would keep those workers from seeing end of stream
  for _, slot in ipairs(S.slots) do
    if slot.chan then slot.chan:close() end
  end
  for _, c in ipairs(S.pending) do c:close() end
  if S.mode == "passfd" then S.listener:close() end
  -- Ctrl-C and a hang-up reach the whole process group: the parent decides
  -- (it closes our channel and we finish the request in hand), so here they
  -- are held blocked by a bridge nobody reads (lua.c's SIGINT handler would
  -- otherwise raise "interrupted!" in the middle of a request)
  local hold <close> = ipc.signalfd({ "INT", "HUP" })
  if S.init then S.init({ id = id, pid = ipc.getpid(), mode = S.mode }) end
  if not chan:send("up") then return end
  if S.mode == "passfd" then passfdworker(S, chan) else sharedworker(S, chan) end
end

-- ---- supervisor --------------------------------------------------------------

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
  slot.due = ipc.monotime() + delay
  return delay
end

local function spawnslot(S, slot)
  local p, msg, err = ipc.spawn(workermain, S, slot.id)
  if not p then
    local delay = backoff(S, slot)
    S.log(fmt("cannot start worker %d: %s (errno %s); retrying in %.2fs",
      slot.id, tostring(msg), tostring(err), delay))
    return false
  end
  slot.proc, slot.chan, slot.started, slot.due = p, p.chan, ipc.monotime(), nil
  slot.idle = true
  S.spawned = S.spawned + 1
  if S.mode == "passfd" then S.idleq[#S.idleq + 1] = slot end
  return true
end

local function closechan(slot)
  if slot.chan then slot.chan:close() end
  slot.chan, slot.idle = nil, false
end

local function describe(how, code)
  if how == "signal" then return "killed by signal " .. (ipc.signals[code] or tostring(code)) end
  if how == "exit" then return "exited with status " .. tostring(code) end
  return tostring(how)
end

-- a worker has ended: forget it and, unless stopping, schedule its successor
local function ended(S, slot, how, code)
  local p = slot.proc
  closechan(slot)
  slot.proc = nil
  if S.stopping then return end
  local lived = ipc.monotime() - slot.started
  if how == "exit" and code == 0 then
    slot.fails, slot.due = 0, ipc.monotime() -- planned (maxrequests, HUP): no delay
    return
  end
  S.crashed = S.crashed + 1
  local delay = backoff(S, slot, lived)
  S.log(fmt("worker %d (pid %d) %s; restarting in %.2fs", slot.id, p.pid, describe(how, code), delay))
end

-- reap the workers that have ended (only ours: other children of this
-- process are left alone)
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
end

local function live(S)
  local n = 0
  for _, slot in ipairs(S.slots) do if slot.proc then n = n + 1 end end
  return n
end

-- passfd: the next idle worker, least recently used first
local function nextidle(S)
  local q = S.idleq
  while q[1] do
    local slot = remove(q, 1)
    if slot.idle and slot.chan then return slot end
  end
end

local function dispatch(S)
  local pending = S.pending
  while pending[1] do
    local slot = nextidle(S)
    if not slot then return end
    local conn = pending[1]
    slot.idle = false
    local ok, msg = slot.chan:send(true, { conn })
    if ok then
      remove(pending, 1)
      conn:close()
      S.connections = S.connections + 1
    else -- the worker is gone; its CHLD follows. Try another one.
      S.log(fmt("cannot hand a connection to worker %d: %s", slot.id, tostring(msg)))
      closechan(slot)
    end
  end
end

local function acceptall(S)
  local srv = S.listener
  while #S.pending < #S.idleq do
    local conn, msg, err = srv:accept()
    if not conn then
      if not TRANSIENT[err] then -- EMFILE and friends: log, and do not spin on them
        S.log("accept failed: " .. tostring(msg))
        S.acceptpause = ipc.monotime() + 0.05
      end
      break
    end
    S.pending[#S.pending + 1] = conn
    dispatch(S)
  end
end

local function readchan(S, slot)
  local msg = slot.chan:recv()
  if msg == "up" then
    slot.up = true
  elseif msg == "idle" then
    slot.idle = true
    S.idleq[#S.idleq + 1] = slot
  elseif msg == nil then -- end of stream: the worker ended or is ending
    closechan(slot)
  end
end

-- graceful restart (HUP): every current worker finishes what it is doing
-- and exits 0; each is replaced as soon as it is reaped
local function restart(S)
  S.log("restarting workers")
  for _, slot in ipairs(S.slots) do closechan(slot) end
end

local function handlesignals(S)
  while true do
    local info = S.sig:read(0)
    if not info then return end
    local name = info.name
    if name == "CHLD" then
      reap(S)
    elseif name == "HUP" then
      if not S.stopping then restart(S) end
    elseif S.stopping then -- a second TERM/INT: no more grace
      S.deadline = ipc.monotime()
    else
      S.stopping, S.signal = true, name
    end
  end
end

-- stop: no more accepting, every worker told to finish (channel closed),
-- grace seconds for them to do so, then TERM, then KILL; all reaped
local function shutdown(S)
  S.stopping = true
  if S.mode == "passfd" then
    for _, c in ipairs(S.pending) do c:close() end
    S.pending = {}
  end
  for _, slot in ipairs(S.slots) do closechan(slot) end
  local now = ipc.monotime()
  S.deadline = S.deadline and (S.deadline < now + S.grace and S.deadline) or now + S.grace
  local termed = false
  while live(S) > 0 do
    local left = S.deadline - ipc.monotime()
    if left <= 0 then
      for _, slot in ipairs(S.slots) do
        if slot.proc then slot.proc:kill(termed and "KILL" or "TERM") end
      end
      if termed then break end
      termed = true
      S.deadline = ipc.monotime() + KILL_WAIT
      left = KILL_WAIT
    end
    local ready = ipc.poll({ [S.sig] = "r" }, left < 0.2 and left or 0.2)
    if ready[S.sig] then handlesignals(S) end
    reap(S)
  end
  for _, slot in ipairs(S.slots) do -- KILLed: reaping cannot take long
    if slot.proc then
      local _, how, code = slot.proc:wait()
      ended(S, slot, how, code)
    end
  end
end

-- ready(info) once every first worker has said "up" (or has crashed: a
-- worker that cannot start does not hold the announcement back)
local function startup(S)
  local pids = {}
  for i, slot in ipairs(S.slots) do
    if not slot.up and slot.fails == 0 then return end
    pids[i] = slot.proc and slot.proc.pid or false
  end
  local ready, name = S.ready, S.listener:getsockname()
  S.ready = nil
  ready({
    addr = name, address = tostring(name), port = name.port, path = name.path,
    pid = ipc.getpid(), pids = pids, mode = S.mode, workers = S.workers,
  })
end

local function loop(S)
  local slots, sig, srv, passfd = S.slots, S.sig, S.listener, S.mode == "passfd"
  for i = 1, S.workers do
    slots[i] = { id = i, fails = 0 }
    spawnslot(S, slots[i])
  end
  while not S.stopping do
    if S.ready then startup(S) end
    local set = { [sig] = "r" }
    local now, timeout = ipc.monotime(), nil
    for _, slot in ipairs(slots) do
      if slot.chan then set[slot.chan] = "r" end
      if slot.due then
        local left = slot.due - now
        if left < 0 then left = 0 end
        if not timeout or left < timeout then timeout = left end
      end
    end
    if passfd and #S.pending == 0 and S.idleq[1] then
      if S.acceptpause and S.acceptpause > now then
        local left = S.acceptpause - now
        if not timeout or left < timeout then timeout = left end
      else
        set[srv] = "r"
      end
    end
    local ready = ipc.poll(set, timeout)
    if ready[sig] then handlesignals(S) end
    if S.stopping then break end
    for _, slot in ipairs(slots) do
      if slot.chan and ready[slot.chan] then readchan(S, slot) end
    end
    if passfd then
      dispatch(S)
      if ready[srv] then acceptall(S) end
    end
    now = ipc.monotime()
    for _, slot in ipairs(slots) do
      if slot.due and slot.due <= now and not slot.proc then
        if spawnslot(S, slot) then S.respawned = S.respawned + 1 end
      end
    end
  end
end

-- ---- run -----------------------------------------------------------------------

local function release(S)
  if S.sig then S.sig:close() S.sig = nil end
  if S.lockfd then S.lockfd:close() S.lockfd = nil end
  if S.ownlistener and S.listener then S.listener:close() end
end

-- an unlinked temporary file for the accept lock, opened once, inherited
local function lockfile()
  local name = os.tmpname()
  local f, msg, err = ipc.open(name, "r+")
  os.remove(name)
  return f, msg, err
end

local function run(opts)
  checkopts(opts)
  local S = {
    handler = opts.handler, mode = opts.mode or "shared", workers = opts.workers or 4,
    ready = opts.ready, init = opts.init, maxrequests = opts.maxrequests,
    log = opts.log == false and function() end or opts.log or deflog,
    grace = opts.grace or 5, backoff = opts.backoff or 5,
    slots = {}, idleq = {}, pending = {},
    spawned = 0, respawned = 0, crashed = 0, connections = 0,
  }
  local srv, msg, err = opts.listen, nil, nil
  if issocket(srv) then
    S.listener = srv
  else
    srv, msg, err = ipc.listen(srv, { backlog = opts.backlog or 128, unlink = true })
    if not srv then return nil, msg, err end
    S.listener, S.ownlistener = srv, true -- its unix path goes when it closes
  end
  local ok, e = pcall(ipc.signalfd, { "CHLD", "TERM", "INT", "HUP" })
  if not ok then -- another live bridge holds one of them: misuse
    release(S)
    error("run: cannot take over CHLD, TERM, INT and HUP: " .. tostring(e), 2)
  end
  S.sig = e
  if S.mode == "shared" and opts.acceptlock ~= false and S.workers > 1 then
    S.lockfd, msg, err = lockfile()
    if not S.lockfd then
      release(S)
      return nil, msg, err
    end
  end
  -- the listener is shared by every process that accepts on it: none of
  -- them may block in accept for a connection another one took
  srv:setnonblocking(true)
  local trace
  local okloop, lerr = xpcall(loop, function(e)
    trace = traceback(tostring(e), 2)
    return e
  end, S)
  if not okloop then S.log("supervisor error, stopping the workers: " .. trace) end
  local okstop, serr = pcall(shutdown, S)
  release(S)
  if not okloop then error(lerr, 0) end
  if not okstop then error(serr, 0) end
  return {
    signal = S.signal, mode = S.mode, workers = S.workers, spawned = S.spawned,
    respawned = S.respawned, crashed = S.crashed,
    connections = S.mode == "passfd" and S.connections or nil,
  }
end

return { run = run, _VERSION = "unixipc.server 1" }
