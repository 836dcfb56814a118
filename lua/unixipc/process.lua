-- spawn(), popen() and daemonize(): parent/child policy over the C core's
-- fork, waitpid, kill, setsid, dup2, _exit, pidfds and _spawn.
--
-- Every child this module forks ends in core._exit, whatever happens in it:
-- it never returns into the caller's code, never runs the caller's exit
-- handlers (a test runner's reporters, say) and never flushes the parent's
-- buffers a second time.
local core = require "unixipc.core"
local check = require "unixipc.check"

local type, error, tostring, tonumber, pcall, setmetatable, getmetatable, pairs, ipairs, warn =
  type, error, tostring, tonumber, pcall, setmetatable, getmetatable, pairs, ipairs, warn
local next = next
local mathtype, concat, huge = math.type, table.concat, math.huge
local isyieldable = coroutine.isyieldable
local stdout, stderr = io.stdout, io.stderr
local fmt = string.format

local function flushstdio()
  pcall(stdout.flush, stdout)
  pcall(stderr.flush, stderr)
end

-- ---- proc objects --------------------------------------------------------

local errno = core.errno
local ECHILD, ESRCH, ENOSYS, EAGAIN, ETIMEDOUT =
  errno.ECHILD, errno.ESRCH, errno.ENOSYS, errno.EAGAIN, errno.ETIMEDOUT

local Proc = {}
Proc.__index = Proc

local function result(self)
  if self._how == "exit" and self._code == 0 then return true, "exit", 0 end
  return nil, self._how, self._code
end

-- the child has been reaped: keep its status, let go of its handle
local function record(self, how, code)
  self._how, self._code = how, code
  local h = self._h
  if h then
    self._h = nil
    h:close()
  end
end

local function isowner(self)
  return self._owner == core.getpid()
end

local function checktimeout(t, fname, argn)
  if t ~= nil and (type(t) ~= "number" or not (t >= 0)) then
    error(fmt("bad argument #%d to '%s' (timeout must be a non-negative number of seconds, got %s)",
      argn or 1, fname, type(t) == "number" and tostring(t) or type(t)), 3)
  end
end

-- the child's own pidfd, opened on first need: the child is ours and not
-- yet reaped, so its pid cannot have been reused. nil where the kernel has
-- no pidfds (the fallback then waits with waitpid).
local function handle(self)
  local h = self._h
  if h or self._nopidfd then return h end
  local _, err
  h, _, err = core.pidfd(self.pid)
  if not h then
    if err == ENOSYS then self._nopidfd = true end
    return nil
  end
  self._h = h
  return h
end

-- wait([timeout]) -> ok, how, code, the shape of os.execute: true|nil,
-- "exit"|"signal", exit status or signal number; nil, "timeout", ETIMEDOUT
-- when timeout seconds pass first. The status is kept: waiting again
-- returns it. It waits on the child's pidfd (waitid(P_PIDFD)): no polling
-- loop, only this child is reaped, and inside a task the other tasks run
-- meanwhile. Without pidfds: waitpid, and naps of 1 to 50 ms with a timeout.
function Proc:wait(timeout)
  checktimeout(timeout, "wait")
  if self._how then return result(self) end
  local h = handle(self)
  if h then
    local ok, how, code = h:wait(timeout)
    if how == "exit" or how == "signal" then
      record(self, how, code)
      return ok, how, code
    end
    if code ~= ENOSYS then return ok, how, code end
    self._nopidfd, self._h = true, nil -- waitid without P_PIDFD (Linux 5.3)
    h:close()
  end
  -- without pidfds a wait for ever is waitpid's, except where the caller
  -- may be a task (a coroutine): there, naps of ipc.sleep let the others run
  if timeout == nil and not isyieldable() then
    local pid, how, code = core.waitpid(self.pid)
    if not pid then return nil, how, code end
    record(self, how, code)
    return result(self)
  end
  local deadline, step = timeout and core.monotime() + timeout or huge, 0.001
  while true do
    local pid, how, code = core.waitpid(self.pid, "nohang")
    if not pid then return nil, how, code end
    if pid ~= 0 then
      record(self, how, code)
      return result(self)
    end
    local left = deadline - core.monotime()
    if left <= 0 then return nil, "timeout", ETIMEDOUT end
    core.sleep(step < left and step or left)
    if step < 0.05 then step = step * 2 end
  end
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

-- kill([sig]) -> true, through the child's pidfd where there is one;
-- refuses once the child is reaped, since its pid may already belong to
-- another process
function Proc:kill(sig)
  if self._how then return nil, "kill: process already reaped", ESRCH end
  local h = self._h
  if h then return h:kill(sig == nil and "TERM" or sig) end
  return core.kill(self.pid, sig == nil and "TERM" or sig)
end

-- pidfd() -> a handle for the child (ipc.pidfd's object), the caller's to
-- close: poll it, signal through it. Waiting is p:wait's: a wait through
-- the handle reaps the child behind p's back (p:wait then says ECHILD).
function Proc:pidfd()
  if self._how then return nil, "pidfd: process already reaped", ESRCH end
  local h = self._h
  if h then return h:dup() end
  return core.pidfd(self.pid)
end

-- end the child: the caller has closed what it talks through. grace
-- seconds for it to end on its own, then TERM and grace more, then KILL;
-- reaped in every case
local function finish(self, grace)
  if self._how then return result(self) end
  if not isowner(self) then
    return nil, "close: not the parent of this process", ECHILD
  end
  local ok, how, code = self:wait(grace)
  if code ~= ETIMEDOUT then return ok, how, code end
  self:kill("TERM")
  ok, how, code = self:wait(grace)
  if code ~= ETIMEDOUT then return ok, how, code end
  self:kill("KILL")
  return self:wait()
end

local function checkgrace(grace)
  if grace ~= nil and (type(grace) ~= "number" or not (grace >= 0)) then
    error("bad argument #1 to 'close' (grace must be a non-negative number of seconds)", 3)
  end
  return grace or 1
end

-- close([grace]) -> the wait() results. Closes the channel (a child
-- reading it sees end of stream), gives the child grace seconds (default
-- 1) to end on its own, then sends SIGTERM and gives it grace seconds
-- more, then SIGKILL; reaps it in every case. `local p <close> =
-- ipc.spawn(...)` does the same when the scope ends.
function Proc:close(grace)
  grace = checkgrace(grace)
  local chan = self.chan
  if chan and chan.close then pcall(chan.close, chan) end
  return finish(self, grace)
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
local function collect(self)
  if self._how or not isowner(self) then return end
  local pid = core.waitpid(self.pid, "nohang")
  if pid == 0 then
    abandoned[#abandoned + 1] = self.pid
    warn(fmt("unixipc: process %d was collected while still running; "
      .. "wait() for it or close it (it will be reaped at a later spawn or popen)", self.pid))
  end
end
Proc.__gc = collect

Proc.__tostring = function(self)
  if not self._how then return fmt("process %d (running)", self.pid) end
  return fmt("process %d (%s %d)", self.pid, self._how, self._code)
end

Proc.__name = "unixipc.process"

-- f(...) for the user's function fname: an argument error f raises is
-- raised again as fname's, its argument number translated by nmap (a C
-- call's argument -> the user's), at the user's line
local function relay(fname, nmap, ok, ...)
  if ok then return ... end
  local err = ...
  local n, why = tostring(err):match("bad argument #(%d+) to '[^']*' %((.*)%)$")
  if n then
    error(fmt("bad argument #%d to '%s' (%s)", nmap[n + 0] or n + 0, fname, why), 3)
  end
  error(err, 0)
end

-- ---- spawn ---------------------------------------------------------------

local IPC -- the module table this layer was installed into

-- this process's ends of its children's channels and pipes: a child
-- spawned later inherits copies, which it closes, or an earlier child
-- would never see end of stream while a later sibling lives
local inherited = setmetatable({}, { __mode = "k" })

-- forget the ends already closed. The collector would drop them only at its
-- next cycle, and a table keeps its slots until it grows again: without
-- this every child walked the slots of every channel closed since that
-- cycle (bench pidfd: 3.0k -> 3.6k spawn + wait a second; CPU for 3,000 of
-- them 978 -> 744 ms)
local function pruneinherited()
  for o in pairs(inherited) do
    if o:getfd() < 0 then inherited[o] = nil end
  end
end

-- The child's side, run by core._forkrun under a C-level pcall that always
-- ends in _exit: 0 when this returns, 1 with the traceback on stderr.
local function child(fn, own, other, ...)
  -- the signal layer's reset: unblock what its bridges blocked, close their
  -- descriptors
  core._sigreset()
  other:close()
  for o in pairs(inherited) do o:close() end
  local chan = IPC.channel(own)
  fn(chan, ...) -- results dropped: only _forkrun itself may be returned
end

local callable = check.callable

local SPAWN = { pdeathsig = true, setsid = true, cwd = true, fds = true }

-- spawn(fn, ...) or spawn{fn, ..., pdeathsig =, setsid =, cwd =, fds =}
-- -> proc: fork; the child runs fn(chan, ...) and exits 0 when it returns,
-- 1 (traceback on stderr) when it raises. The options are popen's, done
-- in the child right after fork before any Lua runs there: pdeathsig (the
-- signal the child gets when this process dies), setsid, cwd, fds
-- (descriptors put at given numbers in the child; the others stay, its
-- Lua objects name them). A step that fails is spawn's nil, msg, errno.
local function spawn(fn, ...)
  local opts = nil
  if type(fn) == "table" and not callable(fn) and callable(fn[1]) then
    opts = fn
    for k in pairs(opts) do
      if type(k) == "string" then
        if not SPAWN[k] then error(fmt("bad argument #1 to 'spawn' (unknown option '%s')", k), 2) end
      elseif mathtype(k) ~= "integer" or k < 1 then
        error(fmt("bad argument #1 to 'spawn' (option names must be strings, got %s)", type(k)), 2)
      end
    end
    fn = opts[1]
  elseif not callable(fn) then
    error(fmt("bad argument #1 to 'spawn' (function expected, got %s)", type(fn)), 2)
  end
  if abandoned[1] then reapabandoned() end
  pruneinherited()
  local mine, theirs, err = core.socketpair("stream")
  if not mine then return nil, theirs, err end
  local pid, msg
  if opts then
    local plan = { pdeathsig = opts.pdeathsig, setsid = opts.setsid, cwd = opts.cwd, fds = opts.fds }
    local ok, r1, r2, r3 = pcall(core._forkrunx, plan, child, fn, theirs, mine,
      table.unpack(opts, 2, #opts))
    if not ok then -- misuse: nothing may stay open
      mine:close()
      theirs:close()
      relay("spawn", {}, false, r1)
    end
    pid, msg, err = r1, r2, r3
  else
    pid, msg, err = core._forkrun(child, fn, theirs, mine, ...)
  end
  if not pid then
    mine:close()
    theirs:close()
    return nil, msg, err
  end
  theirs:close()
  inherited[mine] = true
  local chan = IPC.channel(mine)
  return setmetatable({ pid = pid, chan = chan, _owner = core.getpid() }, Proc)
end

-- ---- popen ---------------------------------------------------------------

local Popen = setmetatable({}, { __index = Proc })
Popen.__index = Popen
Popen.__gc = collect
Popen.__name = "unixipc.popen"
Popen.__tostring = Proc.__tostring

local POPEN = { stdin = true, stdout = true, stderr = true, env = true, cwd = true, fds = true,
  setsid = true, pdeathsig = true }
local STD = { "stdin", "stdout", "stderr" }
local SPAWNARGS = { [3] = 2, [4] = 2 } -- _spawn's env and options are popen's options

local function closeall(list)
  for i = #list, 1, -1 do
    pcall(list[i].close, list[i])
    list[i] = nil
  end
end

-- a descriptor for a std stream: a unixipc object, an io file, an integer
local function isdescriptor(v)
  if mathtype(v) == "integer" then return v >= 0 end
  local t = io.type(v)
  if t then return t end
  return type(v) == "userdata" and getmetatable(v) ~= nil and v.getfd ~= nil
end

local function checkstd(name, v)
  if v == nil or v == false or v == "pipe" or (name == "stderr" and v == "stdout") then return end
  if type(v) == "string" then
    if v:find("\0", 1, true) then
      error(fmt("bad argument #2 to 'popen' (option '%s': path contains a NUL byte)", name), 4)
    end
    return
  end
  local d = isdescriptor(v)
  if not d then
    error(fmt("bad argument #2 to 'popen' (option '%s' must be \"pipe\", a descriptor, a path or "
      .. "false%s, got %s)", name, name == "stderr" and " or \"stdout\"" or "",
      mathtype(v) == "integer" and tostring(v) or type(v)), 4)
  end
  if d == "closed file" or (type(v) == "userdata" and d == true and v:getfd() < 0) then
    error(fmt("bad argument #2 to 'popen' (option '%s': attempt to use a closed %s)", name,
      d == "closed file" and "file" or "descriptor"), 4)
  end
end

-- the argv of exec from popen's {program, args...}
local function execargv(argv)
  if type(argv) ~= "table" then
    error(fmt("bad argument #1 to 'popen' (argv must be a list {program, args...}, got %s)",
      type(argv)), 3)
  end
  local n = #argv
  if n == 0 then error("bad argument #1 to 'popen' (argv[1], the program, expected)", 3) end
  local a = {}
  for i = 1, n do
    local v = argv[i]
    local t = type(v)
    if t ~= "string" and t ~= "number" then
      error(fmt("bad argument #1 to 'popen' (argv[%d] must be a string, got %s)", i, t), 3)
    end
    if t == "string" and v:find("\0", 1, true) then
      error(fmt("bad argument #1 to 'popen' (argv[%d] contains a zero byte)", i), 3)
    end
    a[i - 1] = v
  end
  return tostring(argv[1]), a
end

-- popen(argv [, opts]) -> c: run a program as Python's subprocess.Popen.
-- argv = {program, arg, ...}; program without "/" is searched in PATH.
-- opts.stdin / stdout / stderr: "pipe" (c.stdin, c.stdout, c.stderr are
-- this side's ends), a descriptor (object, io file, integer), a path
-- (opened "r" for stdin, "w" for the others), false (/dev/null), nil (this
-- process's own); stderr = "stdout" shares stdout. env, cwd, setsid,
-- pdeathsig as exec and spawn; fds = {[n] = descriptor} more descriptors
-- for the program. The program gets exactly 0, 1, 2 and fds: every other
-- descriptor is closed. Run by clone(CLONE_VM | CLONE_VFORK) + exec
-- (csrc/exec.c): a failed exec, chdir or dup2 is popen's nil, msg, errno.
local function popen(argv, opts)
  local prog, a = execargv(argv)
  opts = check.options(opts, 2, "popen", POPEN, 2)
  for _, name in ipairs(STD) do checkstd(name, opts[name]) end
  if opts.fds ~= nil and type(opts.fds) ~= "table" then
    error(fmt("bad argument #2 to 'popen' (option 'fds' must be a table {[n] = descriptor, ...}, got %s)",
      type(opts.fds)), 2)
  end
  check.bool(opts.setsid, "setsid", 2, "popen", 2)
  if abandoned[1] then reapabandoned() end
  local map, mine, theirs = {}, {}, {}
  for k, v in pairs(opts.fds or {}) do
    if mathtype(k) == "integer" and k >= 0 and k <= 2 and opts[STD[k + 1]] ~= nil then
      closeall(theirs)
      error(fmt("bad argument #2 to 'popen' (option 'fds' sets descriptor %d, which option '%s' sets)",
        k, STD[k + 1]), 2)
    end
    map[k] = v
  end
  for i, name in ipairs(STD) do
    local fd, v = i - 1, opts[name]
    if v == nil then
      if map[fd] == nil then map[fd] = fd end -- inherited (left closed if it is closed)
    elseif v == "pipe" then
      local r, w, err = core.pipe()
      if not r then
        closeall(theirs)
        closeall(mine)
        return nil, w, err
      end
      if fd == 0 then r, w = w, r end -- r: ours, w: the program's
      mine[name], mine[#mine + 1] = r, r
      theirs[#theirs + 1], map[fd] = w, w
    elseif v == "stdout" and fd == 2 then
      map[2] = map[1]
    elseif v == false or type(v) == "string" then
      local path = v or "/dev/null"
      local f, msg, err = core.open(path, fd == 0 and "r" or "w")
      if not f then
        closeall(theirs)
        closeall(mine)
        return nil, msg, err
      end
      theirs[#theirs + 1], map[fd] = f, f
    else
      map[fd] = v
    end
  end
  local ok, pid, h, err = pcall(core._spawn, prog, a, opts.env,
    { fds = map, cwd = opts.cwd, setsid = opts.setsid, pdeathsig = opts.pdeathsig })
  closeall(theirs)
  if not ok then -- misuse: nothing may stay open
    closeall(mine)
    relay("popen", SPAWNARGS, false, pid)
  end
  if not pid then
    closeall(mine)
    return nil, h, err
  end
  for _, o in ipairs(mine) do inherited[o] = true end
  return setmetatable({ pid = pid, stdin = mine.stdin, stdout = mine.stdout, stderr = mine.stderr,
    _h = h or nil, _nopidfd = not h or nil, _owner = core.getpid() }, Popen)
end

-- close the pipes this side holds (the program sees end of file on its
-- stdin, EPIPE on its outputs)
local function closepipes(self)
  for _, name in ipairs(STD) do
    local o = self[name]
    if o then pcall(o.close, o) end
  end
end

-- close([grace]) -> the wait() results: closes the pipes, then as a
-- spawned process's close: grace seconds (default 1), TERM, grace, KILL
function Popen:close(grace)
  grace = checkgrace(grace)
  closepipes(self)
  return finish(self, grace)
end

Popen.__close = function(self) self:close() end

-- communicate([input [, timeout]]) -> out, err, ok, how, code
-- Writes input to the program's stdin (then closes it), reads its stdout
-- and stderr to the end, all at once (poll), so no side waits for the
-- other however much either writes; then waits for the program. out and
-- err are what it wrote ("" for a stream that is no pipe); ok, how, code
-- are wait()'s. A timeout returns nil, "timeout", ETIMEDOUT and keeps
-- everything: calling communicate again (after c:kill(), say) goes on.
function Popen:communicate(input, timeout)
  if input ~= nil and type(input) ~= "string" then
    error(fmt("bad argument #1 to 'communicate' (input must be a string or nil, got %s)", type(input)), 2)
  end
  checktimeout(timeout, "communicate", 2)
  local st = self._comm
  if not st then
    if input and input ~= "" and not self.stdin then
      error("bad argument #1 to 'communicate' (input given, but stdin is not a pipe)", 2)
    end
    st = { input = input or "", pos = 1, out = {}, err = {} }
    self._comm = st
    local w = self.stdin
    if w and w:getfd() >= 0 then
      if st.input == "" then w:close() else w:setnonblocking(true) end
    end
  end
  local deadline = timeout and core.monotime() + timeout
  local set, sink = {}, {}
  local w, r1, r2 = self.stdin, self.stdout, self.stderr
  if w and w:getfd() >= 0 then set[w] = "w" end
  if r1 and r1:getfd() >= 0 then set[r1], sink[r1] = "r", st.out end
  if r2 and r2:getfd() >= 0 then set[r2], sink[r2] = "r", st.err end
  local input_ = st.input
  while next(set) do
    local left = deadline and deadline - core.monotime()
    if left and left <= 0 then return nil, "timeout", ETIMEDOUT end
    local ready, msg, err = core.poll(set, left)
    if not ready then return nil, msg, err end
    for o in pairs(ready) do
      if o == w then
        local n, _, e = o:write(input_:sub(st.pos, st.pos + 65535))
        if n then
          st.pos = st.pos + n
        elseif e ~= EAGAIN then
          st.pos = #input_ + 1 -- the program stopped reading (EPIPE): as Python, go on
        end
        if st.pos > #input_ then
          set[o] = nil
          o:close()
        end
      else
        local data, m, e = o:read(65536)
        if data then
          local t = sink[o]
          t[#t + 1] = data
        elseif m == "eof" then
          set[o] = nil
          o:close()
        elseif e ~= EAGAIN then
          return nil, m, e
        end
      end
    end
  end
  local left = deadline and deadline - core.monotime()
  local ok, how, code = self:wait(left and (left > 0 and left or 0) or nil)
  if how ~= "exit" and how ~= "signal" then return ok, how, code end
  return concat(st.out), concat(st.err), ok, how, code
end

-- ---- daemonize -----------------------------------------------------------

local OPTS = { chdir = true, umask = true, stdio = true, exit = true }

local function checkopts(opts)
  opts = check.options(opts, 1, "daemonize", OPTS, 3)
  local function need(name, ok, what)
    local v = opts[name]
    if v ~= nil and v ~= false and not ok(v) then
      check.argerror(4, 1, "daemonize", "option '%s' must be %s or false, got %s", name, what,
        mathtype(v) and tostring(v) or type(v))
    end
  end
  need("chdir", function(v) return type(v) == "string" end, "a directory")
  need("umask", function(v) return mathtype(v) == "integer" and v >= 0 and v <= 511 end,
    "a mask from 0 to 0777")
  need("stdio", function(v) return type(v) == "string" end, "a path")
  check.bool(opts.exit, "exit", 1, "daemonize", 3)
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
  ipc.popen = popen
  ipc.daemonize = daemonize
  return ipc
end
