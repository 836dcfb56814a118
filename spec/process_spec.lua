-- Processes: fork, waitpid, kill, _exit, setsid, dup2, exec, spawn,
-- daemonize. Real forks throughout. Every child forked here ends in
-- ipc._exit, even when its body fails, so busted's reporters only ever run
-- in the busted process.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno
local MYPID = ipc.getpid()

-- everything a socket (or pipe) delivers until end of stream
local function readall(s)
  local t = {}
  while true do
    local data = s:read(65536)
    if not data then break end
    t[#t + 1] = data
  end
  return table.concat(t)
end

-- what a spawned child sent on its channel: one channel message
local function recvall(chan)
  return (chan:recv())
end

-- run a Lua chunk in a separate lua5.4 process whose stdout is a pipe:
-- stdout bytes, stderr text, and os.execute-style status
local function runlua(code)
  local script, errf = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local cmd = ("LUA_PATH=%q LUA_CPATH=%q lua5.4 %s 2>%s"):format(package.path, package.cpath,
    script, errf)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, how, status = p:close()
  f = assert(io.open(errf))
  local err = f:read("a")
  f:close()
  os.remove(script)
  os.remove(errf)
  return out, err, ok, how, status
end

local function children()
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(MYPID, MYPID)))
  local s = f:read("a")
  f:close()
  return s
end

local function procstate(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return nil end
  local s = f:read("l")
  f:close()
  return s and s:match("^%d+ %b() (%S)")
end

-- wait (up to a couple of seconds) until pid is a zombie
local function untilzombie(pid)
  local deadline = ipc.monotime() + 2
  while procstate(pid) ~= "Z" and ipc.monotime() < deadline do ipc.poll({}, 0.005) end
  return procstate(pid) == "Z"
end

describe("fork and waitpid", function()
  it("returns the pid in the parent and 0 in the child, with exit codes", function()
    for _, c in ipairs({ { 0, 0 }, { 7, 7 }, { 255, 255 }, { true, 0 }, { false, 1 } }) do
      local pid = assert(ipc.fork())
      if pid == 0 then ipc._exit(c[1]) end
      assert.is_true(pid > 0)
      local r, how, code = ipc.waitpid(pid)
      assert.equal(pid, r)
      assert.equal("exit", how)
      assert.equal(c[2], code)
    end
    local pid = assert(ipc.fork())
    if pid == 0 then ipc._exit() end
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
  end)

  it("reports signal deaths with the signal number", function()
    -- (not SIGINT: lua.c catches it and turns it into a Lua error)
    for _, sig in ipairs({ "TERM", "SIGKILL", "usr1", ipc.SIGUSR2 }) do
      local r, w = ipc.pipe()
      local pid = S.child(function() w:close(); r:read(1) end)
      r:close()
      assert.is_true(ipc.kill(pid, sig))
      local p, how, code = ipc.waitpid(pid)
      w:close()
      assert.equal(pid, p)
      assert.equal("signal", how)
      assert.equal(type(sig) == "number" and sig or ipc.signals[sig:upper():gsub("^SIG", "")], code)
    end
  end)

  it("nohang returns 0 while the child runs", function()
    local r, w = ipc.pipe()
    local pid = S.child(function() w:close(); r:read(1); return 3 end)
    r:close()
    local n = select("#", ipc.waitpid(pid, "nohang"))
    assert.equal(1, n)
    assert.equal(0, ipc.waitpid(pid, "nohang"))
    assert.equal(0, ipc.waitpid(-1, "nohang"))
    w:close() -- the child reads end of file and exits 3
    assert.same({ pid, "exit", 3 }, { ipc.waitpid(pid) })
  end)

  it("waitpid(-1) reaps any child; ECHILD when there is none", function()
    local pid = S.child(function() return 5 end)
    assert.same({ pid, "exit", 5 }, { ipc.waitpid() })
    local none, msg, err = ipc.waitpid(-1)
    assert.is_nil(none)
    assert.equal(E.ECHILD, err)
    assert.matches("^waitpid: ", msg)
  end)

  it("sees stopped and continued children when asked", function()
    local r, w = ipc.pipe()
    local pid = S.child(function() w:close(); r:read(1) end)
    r:close()
    ipc.kill(pid, "STOP")
    assert.same({ pid, "stop", ipc.SIGSTOP }, { ipc.waitpid(pid, "untraced") })
    ipc.kill(pid, "CONT")
    assert.same({ pid, "continue", ipc.SIGCONT }, { ipc.waitpid(pid, "continued") })
    ipc.kill(pid, "TERM")
    assert.same({ pid, "signal", ipc.SIGTERM }, { ipc.waitpid(pid) })
    w:close()
  end)

  it("flushes C stdio before forking, so nothing is written twice", function()
    local out, err, ok = runlua [[
      local ipc = require "unixipc"
      io.write("A")                         -- buffered: stdout is a pipe
      local pid = ipc.fork()
      if pid == 0 then io.write("C"); io.stdout:flush(); ipc._exit(0) end
      ipc.waitpid(pid)
      io.write("P\n")
    ]]
    assert.equal("", err)
    assert.is_true(ok)
    assert.equal("ACP\n", out)
  end)

  it("gives the child its own pid and the parent's as getppid", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function()
      a:close()
      b:sendall(("%d %d"):format(ipc.getpid(), ipc.getppid()))
    end)
    b:close()
    local got = readall(a)
    a:close()
    assert.equal(("%d %d"):format(pid, MYPID), got)
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
    assert.equal(MYPID, ipc.getpid())
    assert.is_true(ipc.getppid() > 0)
  end)

  it("kill probes with 0 and fails with ESRCH for no such process", function()
    assert.is_true(ipc.kill(MYPID, 0))
    local ok, msg, err = ipc.kill(1 << 30, 0)
    assert.is_nil(ok)
    assert.equal(E.ESRCH, err)
    assert.matches("^kill: ", msg)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.waitpid("x") end)
    assert.has_error(function() ipc.waitpid(1.5) end)
    assert.has_error(function() ipc.waitpid(-1, "bogus") end, "bad argument #2 to 'waitpid' (unknown wait option 'bogus')")
    assert.has_error(function() ipc.waitpid(-1, {}) end)
    assert.has_error(function() ipc.kill() end)
    assert.has_error(function() ipc.kill("x", "TERM") end)
    assert.has_error(function() ipc.kill(MYPID, "NOPE") end, "bad argument #2 to 'kill' (unknown signal 'NOPE')")
    -- names are whole words: no prefix of one, no trailing bytes, no embedded NUL
    for _, name in ipairs({ "", "SIG", "US", "USR", "USR1X", "SIGUSR12", "USR1\0", "SIG\0USR1", "XUSR1", "RTMIN\0x", "RTMIN+1\0" }) do
      assert.has_error(function() ipc.kill(MYPID, name) end)
    end
    -- case does not matter, with or without SIG (SIGCONT to itself is harmless)
    for _, name in ipairs({ "cont", "Cont", "CONT", "SIGCONT", "sigcont", "SigCont" }) do
      assert.is_true(ipc.kill(MYPID, name))
    end
    assert.has_error(function() ipc.kill(MYPID, 1.5) end)
    assert.has_error(function() ipc.kill(MYPID, 100000) end)
    assert.has_error(function() ipc.kill(MYPID, {}) end)
    assert.has_error(function() ipc.getsid("x") end)
    -- _exit must raise before exiting: try it where a miss costs nothing
    local pid = S.child(function()
      local a = pcall(ipc._exit, "x")
      local b = pcall(ipc._exit, {})
      local c = pcall(ipc._exit, 1.5)
      return (not a and not b and not c) and 42 or 1
    end)
    assert.same({ pid, "exit", 42 }, { ipc.waitpid(pid) })
  end)
end)

describe("setsid and getsid", function()
  it("makes the child a session leader, once", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function()
      a:close()
      local before = ipc.getsid()
      local sid = ipc.setsid()
      local again, _, err = ipc.setsid()
      b:sendall(("%d %d %d %s %d"):format(before, sid, ipc.getsid(0), tostring(again), err))
    end)
    b:close()
    local got = readall(a)
    a:close()
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
    local before, sid, sid2, again, err = got:match("^(%d+) (%d+) (%d+) (%S+) (%d+)$")
    assert.equal(tostring(ipc.getsid()), before)
    assert.equal(tostring(pid), sid)
    assert.equal(sid, sid2)
    assert.equal("nil", again)
    assert.equal(tostring(E.EPERM), err)
    assert.equal(ipc.getsid(), ipc.getsid(MYPID))
  end)
end)

describe("dup2", function()
  it("returns the target and accepts objects, io files and integers", function()
    local r, w = ipc.pipe()
    local r2, w2 = ipc.pipe()
    assert.equal(w2:fileno(), ipc.dup2(w, w2))  -- w2 now writes into the first pipe
    w2:write("x")
    assert.equal("x", r:read(1))
    assert.equal(w2:fileno(), ipc.dup2(w:fileno(), w2:fileno()))
    local f = assert(io.tmpfile())
    assert.equal(w2:fileno(), ipc.dup2(f, w2))
    f:close()
    for _, o in ipairs({ r, w, r2, w2 }) do o:close() end
  end)

  it("fails with EBADF for a descriptor that is not open", function()
    local r, w = ipc.pipe()
    local n = r:fileno()
    r:close()
    local ok, msg, err = ipc.dup2(n, w)
    assert.is_nil(ok)
    assert.equal(E.EBADF, err)
    assert.matches("^dup2: ", msg)
    w:close()
  end)

  it("makes a descriptor that survives exec, even dup2(fd, fd)", function()
    local a, b = ipc.socketpair()
    local x, y = ipc.socketpair()
    local target = 200
    local pid = S.child(function()
      a:close()
      ipc.dup2(b, 1)
      ipc.dup2(y, target)         -- a copy: survives exec
      ipc.dup2(x, x)              -- the same descriptor: must survive too
      local script = ("for fd in %d %d %d; do test -e /proc/self/fd/$fd && echo open || echo closed; done")
        :format(target, x:fileno(), y:fileno())
      ipc.exec("sh", { "-c", script })
      return 127
    end)
    b:close()
    local out = readall(a)
    a:close()
    x:close()
    y:close()
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
    assert.equal("open\nopen\nclosed\n", out) -- y itself stays close-on-exec
  end)

  it("rejects bad arguments", function()
    local r, w = ipc.pipe()
    r:close()
    assert.has_error(function() ipc.dup2() end)
    assert.has_error(function() ipc.dup2("x", 1) end)
    assert.has_error(function() ipc.dup2(w, -1) end)
    assert.has_error(function() ipc.dup2(w, 1.5) end)
    assert.has_error(function() ipc.dup2(r, w) end, "bad argument #1 to 'dup2' (attempt to use a closed descriptor)")
    assert.has_error(function() ipc.dup2(w, {}) end)
    w:close()
  end)
end)

describe("exec", function()
  -- run exec(...) in a child whose stdout and stderr go down a socket
  local function execout(path, argv, env)
    local a, b = ipc.socketpair()
    local pid = S.child(function()
      a:close()
      ipc.dup2(b, 1)
      ipc.dup2(b, 2)
      b:close()
      local _, msg = ipc.exec(path, argv, env)
      io.stdout:write("exec failed: ", msg)
      io.stdout:flush()
      return 127
    end)
    b:close()
    local out = readall(a)
    a:close()
    local _, how, code = ipc.waitpid(pid)
    return out, how, code
  end

  it("runs a program with its output down a socket (fork + dup2 + exec)", function()
    local out, how, code = execout("sh", { "-c", "echo out; echo err >&2; exit 4" })
    assert.equal("out\nerr\n", out)
    assert.equal("exit", how)
    assert.equal(4, code)
  end)

  it("takes argv after the program name, argv[0] to rename it", function()
    assert.equal("cat\0/proc/self/cmdline\0", (execout("cat", { "/proc/self/cmdline" })))
    assert.equal("renamed\0/proc/self/cmdline\0",
      (execout("cat", { [0] = "renamed", "/proc/self/cmdline" })))
    assert.equal("1 2.5\n", (execout("echo", { 1, 2.5 })))
    assert.equal("\n", (execout("echo")))
    assert.equal("/bin/cat\0/proc/self/cmdline\0", (execout("/bin/cat", { "/proc/self/cmdline" })))
  end)

  it("replaces the environment when given one, in either form", function()
    local out = execout("env", {}, { FOO = "bar", "BAZ=1=2", N = 5 })
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "BAZ=1=2", "FOO=bar", "N=5" }, lines)
    assert.equal("", (execout("env", {}, {})))
    assert.matches("PATH=", (execout("env")))
  end)

  it("runs a script without #! through /bin/sh, as execvp does", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("echo script ran with $1\n")
    f:close()
    assert(ipc.chmod(path, 493))
    local out, how, code = execout(path, { "arg" })
    os.remove(path)
    assert.equal("script ran with arg\n", out)
    assert.same({ "exit", 0 }, { how, code })
  end)

  it("returns nil, message, errno for a missing or unrunnable program", function()
    local ok, msg, err = ipc.exec("/nonexistent/program", {})
    assert.is_nil(ok)
    assert.equal(E.ENOENT, err)
    assert.equal("exec /nonexistent/program: " .. ipc.strerror(E.ENOENT), msg)
    ok, msg, err = ipc.exec("unixipc-no-such-program-here", { "x" })
    assert.is_nil(ok)
    assert.equal(E.ENOENT, err)
    assert.matches("^exec unixipc%-no%-such%-program%-here: ", msg)
    ok, _, err = ipc.exec("", {})
    assert.is_nil(ok)
    assert.equal(E.ENOENT, err)
    local path = os.tmpname() -- a file without execute permission
    ok, _, err = ipc.exec(path, {})
    os.remove(path)
    assert.is_nil(ok)
    assert.equal(E.EACCES, err)
    ok, _, err = ipc.exec("/", {})
    assert.is_nil(ok)
    assert.equal(E.EACCES, err)
  end)

  it("reports a missing program from a forked child", function()
    local out, how, code = execout("unixipc-no-such-program-here", {})
    assert.equal("exec failed: exec unixipc-no-such-program-here: " .. ipc.strerror(E.ENOENT), out)
    assert.same({ "exit", 127 }, { how, code })
  end)

  it("rejects bad arguments without running anything", function()
    assert.has_error(function() ipc.exec() end)
    assert.has_error(function() ipc.exec({}, {}) end)
    assert.has_error(function() ipc.exec("a\0b", {}) end, "bad argument #1 to 'exec' (path contains a zero byte)")
    assert.has_error(function() ipc.exec("true", "x") end,
      "bad argument #2 to 'exec' (argv must be a table of strings, got string)")
    assert.has_error(function() ipc.exec("true", { {} }) end,
      "bad argument #2 to 'exec' (argv[1] must be a string, got table)")
    assert.has_error(function() ipc.exec("true", { [0] = false }) end,
      "bad argument #2 to 'exec' (argv[0] must be a string, got boolean)")
    assert.has_error(function() ipc.exec("true", { "a", "b\0c" }) end,
      "bad argument #2 to 'exec' (argv[2] contains a zero byte)")
    assert.has_error(function() ipc.exec("true", {}, "FOO=1") end,
      "bad argument #3 to 'exec' (env must be a table, got string)")
    assert.has_error(function() ipc.exec("true", {}, { FOO = {} }) end,
      "bad argument #3 to 'exec' (env.FOO must be a string, got table)")
    assert.has_error(function() ipc.exec("true", {}, { "FOO" }) end,
      "bad argument #3 to 'exec' (env[1] must look like \"NAME=value\", got 'FOO')")
    assert.has_error(function() ipc.exec("true", {}, { "=x" }) end)
    assert.has_error(function() ipc.exec("true", {}, { ["A=B"] = "x" }) end,
      "bad argument #3 to 'exec' (invalid environment name 'A=B')")
    assert.has_error(function() ipc.exec("true", {}, { [""] = "x" }) end)
    assert.has_error(function() ipc.exec("true", {}, { [true] = "x" }) end,
      "bad argument #3 to 'exec' (env keys must be names or list positions, got boolean)")
  end)
end)

describe("chdir and umask", function()
  it("umask sets and reads the mask", function()
    local old = ipc.umask(077)
    assert.equal(077, ipc.umask())
    assert.equal(077, ipc.umask(old))
    assert.equal(old, ipc.umask())
  end)

  it("chdir changes the directory of a child; fails with ENOENT", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function()
      a:close()
      assert(ipc.chdir("/"))
      local p = io.popen("pwd")
      b:sendall(p:read("a"))
      p:close()
    end)
    b:close()
    assert.equal("/\n", readall(a))
    a:close()
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
    local ok, msg, err = ipc.chdir("/nonexistent/dir")
    assert.is_nil(ok)
    assert.equal(E.ENOENT, err)
    assert.matches("^chdir /nonexistent/dir: ", msg)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.chdir() end)
    assert.has_error(function() ipc.chdir({}) end)
    assert.has_error(function() ipc.umask("x") end)
    assert.has_error(function() ipc.umask(-1) end)
    assert.has_error(function() ipc.umask(01000) end)
  end)
end)

describe("spawn", function()
  it("gives a child end of stream when its channel closes, whatever siblings were spawned after it", function()
    local first = assert(ipc.spawn(function(chan)
      local v, why = chan:recv()
      if v ~= nil or why ~= "eof" then ipc._exit(3) end
    end))
    local later = assert(ipc.spawn(function(chan) chan:recv() end))
    local c = assert(ipc.popen({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
    local last = assert(ipc.spawn(function(chan) chan:recv() end))
    first.chan:close() -- later and last hold no copy of it: first sees the end
    assert.same({ true, "exit", 0 }, { first:wait(30) })
    c.stdin:close() -- nor of cat's stdin: cat sees end of file and ends
    assert.is_nil(c.stdout:read(10))
    assert.same({ true, "exit", 0 }, { c:wait(30) })
    c.stdout:close()
    later.chan:close()
    last.chan:close()
    assert.is_true(later:wait())
    assert.is_true(last:wait())
  end)

  it("runs fn(chan, ...) in a child and reports like os.execute", function()
    local p = assert(ipc.spawn(function(chan, x, y)
      chan:send(("%s %s %d %d"):format(x, y, ipc.getpid(), ipc.getppid()))
    end, "one", 2))
    assert.is_true(p.pid > 0)
    assert.equal(("one 2 %d %d"):format(p.pid, MYPID), recvall(p.chan))
    assert.same({ true, "exit", 0 }, { p:wait() })
    assert.same({ true, "exit", 0 }, { p:wait() }) -- kept
    assert.equal(("process %d (exit 0)"):format(p.pid), tostring(p))
    p.chan:close()
  end)

  it("exits with the status of a failing child: 1", function()
    -- here only the status; the traceback is checked in a separate lua5.4
    -- below, so nothing lands on busted's stderr
    local p = ipc.spawn(function() ipc.dup2(ipc.open("/dev/null", "w"), 2); error("boom") end)
    assert.same({ nil, "exit", 1 }, { p:wait() })
    p.chan:close()
  end)

  it("prints the traceback on stderr and never returns into the caller", function()
    local out, err, ok = runlua [[
      local ipc = require "unixipc"
      io.write("start;")
      local p = ipc.spawn(function(chan, x)
        io.write("child-output;")        -- flushed before the child's _exit
        error("boom-" .. x)
      end, "marker")
      local function show(...) io.write(table.concat({tostring(select(1, ...)), select(2, ...)}, " "), ";") end
      show(p:wait())
      p.chan:close()
      local q = ipc.spawn(function() error(setmetatable({}, {__tostring = function() return "custom-error" end})) end)
      show(q:wait())
      q.chan:close()
      local r = ipc.spawn(function() error({}) end)
      show(r:wait())
      r.chan:close()
      io.write("end\n")
    ]]
    assert.is_true(ok)
    assert.equal("start;child-output;nil exit 1;nil exit 1;nil exit 1;end\n", out)
    assert.matches("boom%-marker\nstack traceback:\n", err)
    assert.matches("custom%-error\nstack traceback:\n", err)
    assert.matches("%(error object is a table value%)\nstack traceback:\n", err)
  end)

  it("reports signal deaths; kill defaults to TERM and refuses after reaping", function()
    local p = ipc.spawn(function(chan) chan:recv() end)
    assert.is_true(p:running())
    assert.is_true(p:kill())
    assert.same({ nil, "signal", ipc.SIGTERM }, { p:wait() })
    assert.is_false(p:running())
    local ok, msg, err = p:kill("KILL")
    assert.is_nil(ok)
    assert.equal("kill: process already reaped", msg)
    assert.equal(E.ESRCH, err)
    assert.equal(("process %d (signal 15)"):format(p.pid), tostring(p))
    p.chan:close()
    local q = ipc.spawn(function(chan) chan:recv() end)
    assert.is_true(q:kill("KILL"))
    assert.same({ nil, "signal", 9 }, { q:wait() })
    q.chan:close()
  end)

  it("closes the other end of the socketpair on each side", function()
    -- the child sees end of stream when the parent closes its end, and the
    -- parent sees it when the child exits: neither holds the other's end
    local p = ipc.spawn(function(chan)
      chan:settimeout(2)
      local data, msg = chan:recv()
      if data ~= nil or msg ~= "eof" then error("expected eof, got " .. tostring(msg)) end
    end)
    p.chan:close()
    assert.same({ true, "exit", 0 }, { p:wait() })
    local q = ipc.spawn(function() end)
    assert.same({ true, "exit", 0 }, { q:wait() })
    q.chan:settimeout(2)
    assert.same({ nil, "eof" }, { q.chan:recv() })
    q.chan:close()
  end)

  it("reaps 200 children and leaves no zombie", function()
    local procs = {}
    for i = 1, 200 do
      procs[i] = assert(ipc.spawn(function(_, n) if n % 2 == 0 then ipc._exit(n % 256) end end, i))
    end
    for i, p in ipairs(procs) do
      local ok, how, code = p:wait()
      assert.equal("exit", how)
      assert.equal(i % 2 == 0 and i % 256 or 0, code)
      assert.equal(code == 0 or nil, ok)
      p.chan:close()
    end
    assert.equal("", children())
  end)

  it("calls core._sigreset in the child when the signal layer provides it", function()
    local saved = ipc._sigreset
    local called = false
    ipc._sigreset = function() called = true end
    local p = ipc.spawn(function(chan) chan:send(tostring(called)) end)
    ipc._sigreset = saved
    assert.equal("true", recvall(p.chan))
    assert.is_false(called)
    p:wait()
    p.chan:close()
  end)

  it("close() and <close> end a running child: TERM, then KILL after the grace", function()
    local pid
    do
      local p <close> = ipc.spawn(function(chan) chan:recv() end)
      pid = p.pid
    end
    local none, _, err = ipc.waitpid(pid, "nohang")
    assert.is_nil(none)
    assert.equal(E.ECHILD, err)
    -- a child that ignores TERM (sh's trap, inherited by exec'd sleep)
    local r, w = ipc.pipe()
    local q = ipc.spawn(function()
      r:close()
      ipc.dup2(w, 1)
      ipc.exec("sh", { "-c", "trap '' TERM; echo ready; exec sleep 5" })
    end)
    w:close()
    assert.equal("ready\n", r:read(6))
    r:close()
    assert.same({ nil, "signal", ipc.SIGKILL }, { q:close(0.05) })
    assert.same({ nil, "signal", ipc.SIGKILL }, { q:close() })
    -- a child that already ended is just reaped
    local s = ipc.spawn(function() return end)
    assert.same({ true, "exit", 0 }, { s:close() })
  end)

  it("__gc reaps an ended child, and a running one at a later spawn", function()
    local p = ipc.spawn(function() end)
    local pid = p.pid
    p.chan:close()
    assert.is_true(untilzombie(pid))
    p = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.equal(E.ECHILD, select(3, ipc.waitpid(pid, "nohang")))

    local r, w = ipc.pipe()
    p = ipc.spawn(function() w:close(); r:read(1) end)
    pid = p.pid
    r:close()
    p.chan:close()
    p = nil -- still running: left running, remembered
    collectgarbage()
    collectgarbage()
    assert.equal(0, ipc.waitpid(pid, "nohang"))
    w:close() -- now it ends
    assert.is_true(untilzombie(pid))
    local q = ipc.spawn(function() end) -- reaps the abandoned one
    assert.equal(E.ECHILD, select(3, ipc.waitpid(pid, "nohang")))
    q:wait()
    q.chan:close()
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.spawn() end, "bad argument #1 to 'spawn' (function expected, got nil)")
    assert.has_error(function() ipc.spawn(42) end, "bad argument #1 to 'spawn' (function expected, got number)")
    assert.has_error(function() ipc.spawn({}) end, "bad argument #1 to 'spawn' (function expected, got table)")
    local p = ipc.spawn(function(chan) chan:recv() end)
    assert.has_error(function() p:kill("NOPE") end)
    assert.has_error(function() p:close("x") end,
      "bad argument #1 to 'close' (grace must be a non-negative number of seconds)")
    assert.has_error(function() p:close(-1) end)
    p:close()
    assert.equal("process", tostring(p):match("^%a+"))
  end)
end)

describe("daemonize", function()
  -- what a daemon reports about itself
  local function report()
    local f = assert(io.open("/proc/self/stat"))
    local ppid, pgrp, sid = f:read("l"):match("^%d+ %b() %S+ (%d+) (%d+) (%d+)")
    f:close()
    local fds = ipc._openfds()
    local p = io.popen("pwd")
    local cwd = p:read("l")
    p:close()
    return ("pid=%d ppid=%s pgrp=%s sid=%s umask=%o cwd=%s 0=%s 1=%s 2=%s"):format(ipc.getpid(),
      ppid, pgrp, sid, ipc.umask(), cwd, fds[0], fds[1], fds[2])
  end

  local function parse(s)
    local t = {}
    for k, v in s:gmatch("(%w+)=(%S*)") do t[k] = v end
    return t
  end

  it("follows the classic recipe and, with exit = false, returns the daemon's pid", function()
    local a, b = ipc.socketpair()
    local pid, msg = ipc.daemonize { exit = false }
    if pid == 0 then -- the daemon: report and _exit, never back into busted
      pcall(function() a:close(); b:sendall(report()) end)
      ipc._exit(0)
    end
    b:close()
    assert.is_number(pid, msg)
    local t = parse(readall(a))
    a:close()
    assert.equal(tostring(pid), t.pid)
    assert.not_equal(tostring(MYPID), t.ppid)         -- the middle child is gone
    assert.not_equal(t.pid, t.sid)                    -- no session leader: no terminal ever
    assert.not_equal(tostring(ipc.getsid()), t.sid)   -- a session of its own
    assert.equal(t.sid, t.pgrp)
    assert.equal("0", t.umask)
    assert.equal("/", t.cwd)
    assert.same({ "/dev/null", "/dev/null", "/dev/null" }, { t["0"], t["1"], t["2"] })
    assert.equal("", children())                      -- the middle child was reaped
  end)

  it("ends the original process with 0 by default; opts keep cwd, umask and stdio", function()
    local p = ipc.spawn(function(chan)
      assert(ipc.daemonize { chdir = false, umask = false, stdio = false })
      chan:send(report())
    end)
    assert.same({ true, "exit", 0 }, { p:wait() }) -- the original ended at daemonize
    local t = parse(recvall(p.chan))
    p.chan:close()
    local mine = parse(report())
    assert.not_equal(tostring(p.pid), t.pid)
    assert.equal(mine.cwd, t.cwd)
    assert.equal(mine.umask, t.umask)
    assert.equal(mine["1"], t["1"])
  end)

  it("flushes the original's output and exits 0 in a plain script", function()
    local out, err, ok = runlua [[
      local ipc = require "unixipc"
      io.write("before;")
      ipc.daemonize()
      io.write("daemon output goes to /dev/null")
    ]]
    assert.equal("", err)
    assert.is_true(ok)
    assert.equal("before;", out)
  end)

  it("reports a failure in the daemon's setup to the original process", function()
    local pid, msg, err = ipc.daemonize { chdir = "/nonexistent/dir", exit = false }
    if pid == 0 then ipc._exit(1) end -- must not happen
    assert.is_nil(pid)
    assert.equal("chdir /nonexistent/dir: " .. ipc.strerror(E.ENOENT), msg)
    assert.equal(E.ENOENT, err)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.daemonize("x") end, "bad argument #1 to 'daemonize' (options must be a table, got string)")
    assert.has_error(function() ipc.daemonize { bogus = 1 } end, "bad argument #1 to 'daemonize' (unknown option 'bogus')")
    assert.has_error(function() ipc.daemonize { umask = -1 } end)
    assert.has_error(function() ipc.daemonize { umask = "022" } end)
    assert.has_error(function() ipc.daemonize { chdir = 5 } end,
      "bad argument #1 to 'daemonize' (option 'chdir' must be a directory or false, got 5)")
    assert.has_error(function() ipc.daemonize { stdio = true } end)
    assert.has_error(function() ipc.daemonize { exit = "no" } end, "bad argument #1 to 'daemonize' (option 'exit' must be a boolean, got string)")
  end)
end)

describe("argument ranges and kinds (review fixes)", function()
  it("refuses pids and codes that do not fit, instead of truncating them", function()
    -- 2^32 would truncate to 0 (our process group), 2^32-1 to -1 (every process)
    local pid = "pid must be an integer from %-2147483648 to 2147483647, got "
    assert.error_matches(function() ipc.kill(1 << 32, 0) end, "bad argument #1 to 'kill' %(" .. pid .. "4294967296%)")
    assert.error_matches(function() ipc.kill(4294967295, 0) end, "bad argument #1 to 'kill' %(" .. pid .. "4294967295%)")
    assert.error_matches(function() ipc.waitpid(1 << 40) end, "bad argument #1 to 'waitpid' %(" .. pid .. "1099511627776%)")
    assert.error_matches(function() ipc.getsid(1 << 40) end,
      "bad argument #1 to 'getsid' %(pid must be an integer from 0 to 2147483647, got 1099511627776%)")
    assert.error_matches(function() ipc._exit(1 << 40) end,
      "bad argument #1 to '_exit' %(exit code must be an integer from %-2147483648 to 2147483647, got 1099511627776%)")
  end)

  it("refuses paths with a NUL byte instead of cutting them short", function()
    assert.error_matches(function() ipc.chdir("/tmp\0/nowhere") end, "path contains a NUL byte")
    assert.error_matches(function() ipc.open("/tmp/x\0.ignored", "w") end, "path contains a NUL byte")
    assert.error_matches(function() ipc.unlink("/tmp/x\0zzz") end, "path contains a NUL byte")
    assert.error_matches(function() ipc.chmod("/tmp/x\0zzz", 420) end, "path contains a NUL byte")
  end)

  it("dup2 onto an object gives it the class of its new file", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    ipc.dup2(a, w) -- w is now a socket: writes carry MSG_NOSIGNAL
    assert.matches("^socket %(unix stream", tostring(w))
    b:close()
    local n, msg, err = w:write("x")
    assert.is_nil(n)
    assert.equal(ipc.errno.EPIPE, err, msg)
    local c, d = ipc.socketpair()
    ipc.dup2(r, c) -- c is now a pipe's read end
    assert.matches("^descriptor %(pipe", tostring(c))
    for _, o in ipairs { a, w, r, c, d } do o:close() end
  end)
end)
