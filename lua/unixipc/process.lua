-- spawn() and daemonize(): parent/child policy over the C core's fork,
-- waitpid, kill, setsid, dup2 and _exit.
--
-- Every child this module forks ends in core._exit, whatever happens in it:
-- it never returns into the caller's code, never runs the caller's exit
-- handlers (a test runner's reporters, say) and never flushes the parent's
-- buffers a second time.
local core = require "unixipc.core"

local type, error, tostring, tonumber, pcall, setmetatable, getmetatable, pairs, warn =
  type, error, tostring, tonumber, pcall, setmetatable, getmetatable, pairs, warn
local mathtype, concat = math.type, table.concat
local stdout, stderr = io.stdout, io.stderr
local fmt = string.format

local function flushstdio()
  pcall(stdout.flush, stdout)
  pcall(stderr.flush, stderr)
end

-- ---- proc objects --------------------------------------------------------

local Proc = {}
Proc.__index = Proc

local function result(self)
  if self._how == "exit" and self._code == 0 then return true, "exit", 0 end
  return nil, self._how, self._code
end

local function record(self, how, code)
  self._how, self._code = how, code
end

local function isowner(self)
  return self._owner == core.getpid()
end

-- wait() -> ok, how, code, the shape of os.execute: true|nil, "exit"|"signal",
-- exit status or signal number. The status is kept: waiting again returns it.
function Proc:wait()
  if self._how then return result(self) end
  local pid, how, code = core.waitpid(self.pid)
  if not pid then return nil, how, code end
  record(self, how, code)
  return result(self)
end

-- running() -> true while the child has not ended; reaps it (non-blocking)
-- when it has, so a later wait() returns at once
function Proc:running()
  if self._how then return false end
  local pid, how, code = core.waitpid(self.pid, "nohang")
  if pid == 0 then return true end
  if not pid then return nil, how, code end
  record(self, how, code)
  return false
end

-- kill([sig]) -> true; refuses once the child is reaped, since its pid may
-- already belong to another process
function Proc:kill(sig)
  if self._how then return nil, "kill: process already reaped", core.errno.ESRCH end
  return core.kill(self.pid, sig == nil and "TERM" or sig)
end

-- wait up to `secs` for the child to end; true if it did
local function waitfor(self, secs)
  local deadline, step = core.monotime() + secs, 0.001
  while true do
    local running = self:running()
    if not running then return true end
    local left = deadline - core.monotime()
    if left <= 0 then return false end
    core.sleep(step < left and step or left)
    if step < 0.05 then step = step * 2 end
  end
end

-- close([grace]) -> the wait() results. Closes the channel (a child
-- reading it sees end of stream), gives the child grace seconds (default
-- 1) to end on its own, then sends SIGTERM and gives it grace seconds
-- more, then SIGKILL; reaps it in every case. `local p <close> =
-- ipc.spawn(...)` does the same when the scope ends.
function Proc:close(grace)
  if grace ~= nil and (type(grace) ~= "number" or not (grace >= 0)) then
    error("bad argument #1 to 'close' (grace must be a non-negative number of seconds)", 2)
  end
  grace = grace or 1
  local chan = self.chan
  if chan and chan.close then pcall(chan.close, chan) end
  if self._how then return result(self) end
  if not isowner(self) then
    return nil, "close: not the parent of this process", core.errno.ECHILD
  end
  local running, msg, err = self:running()
  if running == nil then return nil, msg, err end
  if running and not waitfor(self, grace) then
    core.kill(self.pid, "TERM")
    if not waitfor(self, grace) then core.kill(self.pid, "KILL") end
  end
  return self:wait()
end

Proc.__close = function(self) self:close() end

-- children whose proc object was collected while they still ran: reaped
-- (non-blocking) at every later spawn(), as Python's subprocess does. A
-- list, walked by index, because a finalizer may append to it while it is
-- walked (next() over a table growing underneath is undefined).
local abandoned = {}

local function reapabandoned()
  local i = 1
  while i <= #abandoned do
    if core.waitpid(abandoned[i], "nohang") ~= 0 then -- reaped, or not ours any more
      abandoned[i] = abandoned[#abandoned]
      abandoned[#abandoned] = nil
    else
      i = i + 1
    end
  end
end

-- __gc never blocks and never kills: a child that already ended is reaped;
-- one still running is left to run, remembered for reaping at the next
-- spawn(), and reported with warn() (shown by `lua5.4 -W` or warn("@on")).
Proc.__gc = function(self)
  if self._how or not isowner(self) then return end
  local pid = core.waitpid(self.pid, "nohang")
  if pid == 0 then
    abandoned[#abandoned + 1] = self.pid
    warn(fmt("unixipc: process %d was collected while still running; "
      .. "wait() for it or close it (it will be reaped at a later spawn)", self.pid))
  end
end

Proc.__tostring = function(self)
  if not self._how then return fmt("process %d (running)", self.pid) end
  return fmt("process %d (%s %d)", self.pid, self._how, self._code)
end

Proc.__name = "unixipc.process"

-- ---- spawn ---------------------------------------------------------------

local IPC -- the module table this layer was installed into

-- The child's side, run by core._forkrun under a C-level pcall that always
-- ends in _exit: 0 when this returns, 1 with the traceback on stderr.
local function child(fn, own, other, ...)
  -- the signal layer's reset: unblock what its bridges blocked, close their
  -- descriptors
  core._sigreset()
  other:close()
  local chan = IPC.channel(own)
  fn(chan, ...) -- results dropped: only _forkrun itself may be returned
end

-- spawn(fn, ...) -> proc: fork; the child runs fn(chan, ...) and exits 0
-- when it returns, 1 (traceback on stderr) when it raises.
local function spawn(fn, ...)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    error(fmt("bad argument #1 to 'spawn' (function expected, got %s)", type(fn)), 2)
  end
  if abandoned[1] then reapabandoned() end
  local mine, theirs, err = core.socketpair("stream")
  if not mine then return nil, theirs, err end
  local pid, msg
  pid, msg, err = core._forkrun(child, fn, theirs, mine, ...)
  if not pid then
    mine:close()
    theirs:close()
    return nil, msg, err
  end
  theirs:close()
  local chan = IPC.channel(mine)
  return setmetatable({ pid = pid, chan = chan, _owner = core.getpid() }, Proc)
end

-- ---- daemonize -----------------------------------------------------------

local OPTS = { chdir = true, umask = true, stdio = true, exit = true }

local function checkopts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fmt("bad argument #1 to 'daemonize' (options must be a table, got %s)", type(opts)), 3)
  end
  for k in pairs(opts) do
    if not OPTS[k] then
      error(fmt("bad argument #1 to 'daemonize' (unknown option '%s')", tostring(k)), 3)
    end
  end
  local function check(name, ok, what)
    if opts[name] ~= nil and opts[name] ~= false and not ok(opts[name]) then
      error(fmt("bad argument #1 to 'daemonize' (opts.%s must be %s or false, got %s)",
        name, what, type(opts[name])), 4)
    end
  end
  check("chdir", function(v) return type(v) == "string" end, "a directory")
  check("umask", function(v) return mathtype(v) == "integer" and v >= 0 and v <= 511 end,
    "a mask 0 to 0777")
  check("stdio", function(v) return type(v) == "string" end, "a path")
  if opts.exit ~= nil and type(opts.exit) ~= "boolean" then
    error("bad argument #1 to 'daemonize' (opts.exit must be a boolean)", 3)
  end
  return opts
end

local KEEP = {} -- objects that must never be closed (the daemon's stdio)

-- report a failure up the pipe and end this process
local function fail(w, msg, err)
  pcall(w.write, w, fmt("E%d %s\n", err or 0, msg))
  core._exit(1)
end

-- the daemon's own setup, after the second fork
local function settle(opts, w)
  local ok, msg, err
  if opts.umask ~= false then core.umask(opts.umask or 0) end
  if opts.chdir ~= false then
    ok, msg, err = core.chdir(opts.chdir or "/")
    if not ok then fail(w, msg, err) end
  end
  if opts.stdio ~= false then
    local path = opts.stdio or "/dev/null"
    local null
    null, msg, err = core.open(path, "a+")
    if not null then fail(w, msg, err) end
    for fd = 0, 2 do
      ok, msg, err = core.dup2(null, fd)
      if not ok then fail(w, msg, err) end
    end
    -- it landed on 0, 1 or 2 (one of them was closed): that one must stay
    if null:fileno() > 2 then null:close() else KEEP[#KEEP + 1] = null end
  end
  ok, msg, err = w:write(fmt("P%d\n", core.getpid()))
  if not ok then fail(w, msg, err) end
  w:close()
end

-- daemonize([opts]) -> 0 in the daemon. The classic recipe (APUE 13.3):
-- fork, setsid in the child, fork again so the daemon is no session leader
-- and can never acquire a controlling terminal, umask, chdir "/", stdio to
-- /dev/null. The original process waits until the daemon is set up, then
-- _exits 0 -- or with opts.exit = false returns the daemon's pid and goes
-- on. Failures anywhere return nil, msg, errno in the original process.
-- opts: chdir (default "/", false keeps the cwd), umask (default 0, false
-- keeps it), stdio (default "/dev/null", false keeps 0, 1, 2), exit.
local function daemonize(opts)
  opts = checkopts(opts)
  local r, w, e0 = core.pipe()
  if not r then return nil, w, e0 end
  -- the middle child: a new session, then the daemon, which returns from
  -- _forkrun (0, like fork) into the code below; the middle child _exits
  local pid, msg, err = core._forkrun(function()
    r:close()
    local sid, m, e = core.setsid()
    if not sid then fail(w, m, e) end
    local dpid
    dpid, m, e = core.fork()
    if not dpid then fail(w, m, e) end
    if dpid == 0 then return core._forkrun end
  end)
  if not pid then
    r:close()
    w:close()
    return nil, msg, err
  end
  if pid == 0 then -- the daemon
    local ok = pcall(settle, opts, w)
    if not ok then core._exit(1) end
    return 0
  end
  w:close()
  local line = {}
  repeat
    local s = r:read(64)
    line[#line + 1] = s
  until not s or s:find("\n", 1, true)
  r:close()
  core.waitpid(pid) -- the first child exits as soon as the daemon is forked
  line = concat(line)
  local dpid = line:match("^P(%d+)\n")
  if dpid then
    if opts.exit == false then return tonumber(dpid) end
    flushstdio()
    core._exit(0)
  end
  local e, m = line:match("^E(%d+) ([^\n]*)")
  if e then return nil, m, tonumber(e) end
  return nil, "daemonize: the daemon ended before it was set up", core.errno.ECHILD
end

return function(ipc)
  IPC = ipc
  ipc.spawn = spawn
  ipc.daemonize = daemonize
  return ipc
end
