-- ipc.popen (lua/unixipc/process.lua over csrc/exec.c's _spawn) and the
-- options spawn shares with it (pdeathsig, setsid, cwd, fds). Real
-- programs, real pipes; every child is reaped.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

-- sh's own descriptor table (support.lua)
local LIST, fdline = S.FDLIST, S.fdline

describe("ipc.popen", function()
  it("sorts what the caller writes (stdin and stdout piped)", function()
    local c = assert(ipc.popen({ "sort" }, { stdin = "pipe", stdout = "pipe" }))
    assert.is_number(c.pid)
    assert.truthy(tostring(c):match("^process %d+ %(running%)$"))
    assert.is_true(S.cloexec(c.stdin))
    assert.is_true(S.cloexec(c.stdout))
    assert.is_nil(c.stderr)
    assert.is_true(c.stdin:sendall("pear\napple\nfig\n"))
    c.stdin:close()
    local out = {}
    while true do
      local s = c.stdout:read(4096)
      if not s then break end
      out[#out + 1] = s
    end
    assert.equal("apple\nfig\npear\n", table.concat(out))
    assert.same({ true, "exit", 0 }, { c:wait() })
    assert.same({ true, "exit", 0 }, { c:wait() })
    c.stdout:close()
  end)

  it("the program sees exactly 0, 1, 2 and the descriptors of fds", function()
    local r, w = assert(ipc.pipe())
    local leaky = assert(io.open("/dev/null")) -- not close-on-exec: it must not leak either
    local c = assert(ipc.popen({ "sh", "-c", LIST .. "; readlink /proc/$$/fd/9" },
      { stdout = "pipe", fds = { [9] = w, [12] = r } }))
    local out = fdline(assert(c:communicate()))
    assert.truthy(out:match("^0 1 2 9 12 \npipe:%[%d+%]\n$"), out)
    leaky:close()
    r:close()
    w:close()
    -- stdin/stdout/stderr given, nothing else: 0 1 2 only
    c = assert(ipc.popen({ "sh", "-c", LIST }, { stdin = false, stdout = "pipe", stderr = "stdout" }))
    assert.equal("0 1 2 \n", fdline((c:communicate())))
  end)

  it("stdin, stdout, stderr: pipe, object, io file, path, false, \"stdout\"", function()
    local dir, cleanup = S.tmpdir()
    local f = assert(io.open(dir .. "/in", "w"))
    f:write("from a file\n")
    f:close()
    -- a path for stdin, a path for stdout
    local c = assert(ipc.popen({ "cat" }, { stdin = dir .. "/in", stdout = dir .. "/out" }))
    assert.same({ true, "exit", 0 }, { c:wait() })
    f = assert(io.open(dir .. "/out"))
    assert.equal("from a file\n", f:read("a"))
    f:close()
    -- an io file for stdout, a unixipc object for stdin, stderr into stdout
    local r, w = assert(ipc.pipe())
    local out = assert(io.open(dir .. "/out2", "w"))
    c = assert(ipc.popen({ "sh", "-c", "cat; echo oops >&2" }, { stdin = r, stdout = out, stderr = "stdout" }))
    r:close()
    out:close()
    w:write("through a pipe\n")
    w:close()
    assert.same({ true, "exit", 0 }, { c:wait() })
    f = assert(io.open(dir .. "/out2"))
    assert.equal("through a pipe\noops\n", f:read("a"))
    f:close()
    -- for stdin, "stdout" is a path like any other (here, a missing one)
    assert.same({ nil, "open stdout: No such file or directory", E.ENOENT },
      { ipc.popen({ "cat" }, { stdin = "stdout" }) })
    -- false: /dev/null both ways, seen from here while the program runs
    c = assert(ipc.popen({ "sleep", "60" }, { stdin = false, stdout = false, stderr = "pipe" }))
    local p = io.popen(("readlink /proc/%d/fd/0 /proc/%d/fd/1"):format(c.pid, c.pid))
    assert.equal("/dev/null\n/dev/null\n", p:read("a"))
    p:close()
    c:kill()
    assert.same({ "", "", nil, "signal", ipc.SIGTERM }, { c:communicate() })
    -- an integer works too
    local r2, w2 = assert(ipc.pipe())
    c = assert(ipc.popen({ "sh", "-c", "echo to two >&2" }, { stderr = w2:fileno(), stdout = "pipe" }))
    w2:close()
    assert.equal("", (c:communicate()))
    assert.equal("to two\n", r2:read(100))
    r2:close()
    cleanup()
  end)

  it("communicate moves megabytes both ways without deadlock", function()
    local input = string.rep("0123456789abcdef\n", 128 * 1024) -- 2 MiB
    local c = assert(ipc.popen({ "sh", "-c", "tee /dev/stderr" },
      { stdin = "pipe", stdout = "pipe", stderr = "pipe" }))
    local out, err, ok, how, code = c:communicate(input)
    assert.equal(#input, #out)
    assert.is_true(out == input)
    assert.is_true(err == input)
    assert.same({ true, "exit", 0 }, { ok, how, code })
    -- a program that stops reading: its EPIPE ends the input quietly
    c = assert(ipc.popen({ "sh", "-c", "head -c 10 >/dev/null; echo done" }, { stdin = "pipe", stdout = "pipe" }))
    assert.same({ "done\n", "", true, "exit", 0 }, { c:communicate(input) })
  end)

  it("communicate times out, keeps what it has, and goes on", function()
    local c = assert(ipc.popen({ "sh", "-c", "echo early; read x; echo late" },
      { stdin = "pipe", stdout = "pipe" }))
    local w = c.stdin -- communicate() closes stdin; keep it open to hold the program
    c.stdin = nil
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { c:communicate(nil, 0.05) })
    w:write("go\n")
    w:close()
    assert.same({ "early\nlate\n", "", true, "exit", 0 }, { c:communicate() })
  end)

  it("reports a failed exec, chdir or dup2 as its own failure, never a child exiting 127", function()
    local kids = ipc._openfds() -- (just to compare descriptors after)
    assert.same({ nil, "exec unixipc-no-such-program: No such file or directory", E.ENOENT },
      { ipc.popen({ "unixipc-no-such-program", "x" }, { stdout = "pipe" }) })
    local dir, cleanup = S.tmpdir()
    local f = assert(io.open(dir .. "/data", "w"))
    f:write("not a program\n")
    f:close()
    assert.same({ nil, "exec " .. dir .. "/data: Permission denied", E.EACCES },
      { ipc.popen({ dir .. "/data" }) })
    assert.same({ nil, "chdir " .. dir .. "/none: No such file or directory", E.ENOENT },
      { ipc.popen({ "true" }, { cwd = dir .. "/none" }) })
    assert.same({ nil, "dup2 fds[5]: Bad file descriptor", E.EBADF },
      { ipc.popen({ "true" }, { fds = { [5] = 999 } }) })
    assert.same({ nil, "open " .. dir .. "/none/x: No such file or directory", E.ENOENT },
      { ipc.popen({ "true" }, { stdout = dir .. "/none/x" }) })
    assert.same(kids, ipc._openfds())
    cleanup()
  end)

  it("env, cwd and setsid", function()
    local c = assert(ipc.popen({ "sh", "-c", "echo $GREETING; pwd" },
      { env = { GREETING = "hello", PATH = os.getenv("PATH") }, cwd = "/", stdout = "pipe" }))
    assert.equal("hello\n/\n", (c:communicate()))
    c = assert(ipc.popen({ "sh", "-c", "cut -d' ' -f6 /proc/$$/stat" }, { setsid = true, stdout = "pipe" }))
    assert.equal(tostring(c.pid) .. "\n", (c:communicate()))
    c = assert(ipc.popen({ "sh", "-c", "cut -d' ' -f6 /proc/$$/stat" }, { stdout = "pipe" }))
    assert.equal(tostring(ipc.getsid()) .. "\n", (c:communicate()))
  end)

  it("the program starts with the signal mask from before any signal bridge", function()
    local function blocked(c)
      local out = assert(c:communicate())
      return tonumber(out:match("SigBlk:%s*(%x+)"), 16)
    end
    local usr1 = 1 << (ipc.SIGUSR1 - 1)
    local sig = assert(ipc.signalfd { "USR1" })
    local c = assert(ipc.popen({ "grep", "SigBlk", "/proc/self/status" }, { stdout = "pipe" }))
    assert.equal(0, blocked(c) & usr1)
    -- the bridge keeps working here: the child's resets touched nothing of ours
    assert(ipc.kill(ipc.getpid(), "USR1"))
    assert.equal("USR1", sig:read(5).name)
    sig:close()
  end)

  it("wait(timeout), kill, pidfd and close", function()
    local c = assert(ipc.popen({ "sleep", "60" }))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { c:wait(0.01) })
    local h = assert(c:pidfd())
    assert.equal(c.pid, h:pid())
    assert.same({}, ipc.poll({ [h] = "r" }, 0))
    assert.is_true(c:kill("INT"))
    assert.equal("r", ipc.poll({ [h] = "r" }, 60)[h])
    assert.same({ nil, "signal", ipc.SIGINT }, { c:wait() })
    h:close()
    assert.same({ nil, "kill: process already reaped", E.ESRCH }, { c:kill() })
    -- close: end of file on stdin ends cat; a program ignoring TERM gets KILL
    c = assert(ipc.popen({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
    assert.same({ true, "exit", 0 }, { c:close() })
    c = assert(ipc.popen({ "sh", "-c", "trap '' TERM; echo ready; exec sleep 60" }, { stdout = "pipe" }))
    assert.equal("ready\n", c.stdout:read(6))
    assert.same({ nil, "signal", ipc.SIGKILL }, { c:close(0.02) })
    do
      local d <close> = assert(ipc.popen({ "cat" }, { stdin = "pipe" }))
    end
  end)

  it("a killed parent's pdeathsig program dies", function()
    local r, w = assert(ipc.pipe())
    local mid = S.child(function()
      r:close()
      local c = assert(ipc.popen({ "sleep", "60" }, { pdeathsig = "KILL" }))
      local d = assert(ipc.popen({ "sleep", "60" })) -- the control: no pdeathsig
      w:write(("%d %d\n"):format(c.pid, d.pid))
      ipc.sleep(60)
    end)
    w:close()
    local a, b = r:read(64):match("(%d+) (%d+)")
    r:close()
    local hc, hd = assert(ipc.pidfd(tonumber(a))), assert(ipc.pidfd(tonumber(b)))
    assert.same({}, ipc.poll({ [hc] = "r", [hd] = "r" }, 0))
    assert.is_true(ipc.kill(mid, "KILL"))
    assert.equal("signal 9", S.wait(mid))
    assert.equal("r", ipc.poll({ [hc] = "r" }, 60)[hc]) -- it ended
    assert.is_true(hd:kill(0)) -- the control lives on
    assert.is_true(hd:kill("KILL"))
    assert.equal("r", ipc.poll({ [hd] = "r" }, 60)[hd])
    hc:close()
    hd:close()
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.popen() end,
      "bad argument #1 to 'popen' (argv must be a list {program, args...}, got nil)")
    assert.has_error(function() ipc.popen("ls") end,
      "bad argument #1 to 'popen' (argv must be a list {program, args...}, got string)")
    assert.has_error(function() ipc.popen({}) end, "bad argument #1 to 'popen' (argv[1], the program, expected)")
    assert.has_error(function() ipc.popen({ "ls", {} }) end,
      "bad argument #1 to 'popen' (argv[2] must be a string, got table)")
    assert.has_error(function() ipc.popen({ "ls", "a\0b" }) end,
      "bad argument #1 to 'popen' (argv[2] contains a zero byte)")
    assert.has_error(function() ipc.popen({ "ls" }, { stdot = "pipe" }) end,
      "bad argument #2 to 'popen' (unknown option 'stdot')")
    assert.has_error(function() ipc.popen({ "ls" }, { stdout = true }) end,
      "bad argument #2 to 'popen' (option 'stdout' must be \"pipe\", a descriptor, a path or false, got boolean)")
    assert.has_error(function() ipc.popen({ "ls" }, { stderr = -1 }) end,
      "bad argument #2 to 'popen' (option 'stderr' must be \"pipe\", a descriptor, a path or false or \"stdout\", got -1)")
    local r, w = assert(ipc.pipe())
    r:close()
    assert.has_error(function() ipc.popen({ "ls" }, { stdin = r }) end,
      "bad argument #2 to 'popen' (option 'stdin': attempt to use a closed descriptor)")
    local f = assert(io.open("/dev/null"))
    f:close()
    assert.has_error(function() ipc.popen({ "ls" }, { stdout = f }) end,
      "bad argument #2 to 'popen' (option 'stdout': attempt to use a closed file)")
    assert.has_error(function() ipc.popen({ "ls" }, { stdout = "pipe", fds = { [1] = w } }) end,
      "bad argument #2 to 'popen' (option 'fds' sets descriptor 1, which option 'stdout' sets)")
    assert.has_error(function() ipc.popen({ "ls" }, { fds = { [3] = r } }) end,
      "bad argument #2 to 'popen' (fds[3]: attempt to use a closed descriptor)")
    local before = S.nfds()
    assert.has_error(function() ipc.popen({ "ls" }, { env = 5, stdin = "pipe", stdout = "pipe" }) end,
      "bad argument #2 to 'popen' (env must be a table, got number)")
    assert.equal(before, S.nfds()) -- the pipes made first are closed again
    assert.has_error(function() ipc.popen({ "ls" }, { env = { A = {} } }) end,
      "bad argument #2 to 'popen' (env.A must be a string, got table)")
    assert.has_error(function() ipc.popen({ "ls" }, { cwd = 1 }) end,
      "bad argument #2 to 'popen' (option 'cwd' must be a directory name, got number)")
    assert.has_error(function() ipc.popen({ "ls" }, { setsid = "yes" }) end,
      "bad argument #2 to 'popen' (option 'setsid' must be a boolean, got string)")
    assert.has_error(function() ipc.popen({ "ls" }, { pdeathsig = "NOPE" }) end,
      "bad argument #2 to 'popen' (unknown signal 'NOPE')")
    assert.has_error(function() ipc.popen({ "ls" }, { pdeathsig = 999 }) end,
      "bad argument #2 to 'popen' (option 'pdeathsig' must be an integer from 1 to 64, got 999)")
    local c = assert(ipc.popen({ "cat" }, { stdout = "pipe" }))
    assert.has_error(function() c:communicate("input") end,
      "bad argument #1 to 'communicate' (input given, but stdin is not a pipe)")
    assert.has_error(function() c:communicate(42) end,
      "bad argument #1 to 'communicate' (input must be a string or nil, got number)")
    assert.has_error(function() c:communicate(nil, -1) end,
      "bad argument #2 to 'communicate' (timeout must be a non-negative number of seconds, got -1)")
    assert.has_error(function() c:wait(-1) end,
      "bad argument #1 to 'wait' (timeout must be a non-negative number of seconds, got -1)")
    assert.has_error(function() c:close("x") end,
      "bad argument #1 to 'close' (grace must be a non-negative number of seconds)")
    assert.same({ "", "", true, "exit", 0 }, { c:communicate() }) -- cat reads this process's stdin
    w:close()
  end)
end)

describe("ipc.spawn{fn, ..., options}", function()
  it("runs fn with its arguments, in cwd, in a new session", function()
    local p = assert(ipc.spawn { function(chan, a, b)
      local pp = io.popen("pwd")
      chan:send { a + b, pp:read("l"), ipc.getsid(), ipc.getpid() }
      pp:close()
    end, 40, 2, cwd = "/", setsid = true })
    local v = p.chan:recv()
    assert.same({ 42, "/", v[4], v[4] }, v)
    assert.same({ true, "exit", 0 }, { p:wait() })
    p.chan:close()
  end)

  it("fds puts descriptors at given numbers in the child, keeping the others", function()
    local r, w = assert(ipc.pipe())
    local p = assert(ipc.spawn { function(chan)
      io.stdout:write("to fd 1, which is the pipe\n")
      io.stdout:flush()
      chan:send(ipc._openfds()[1])
    end, fds = { [1] = w } })
    w:close()
    assert.equal("to fd 1, which is the pipe\n", r:read(100))
    assert.truthy(p.chan:recv():match("^pipe:"))
    assert(p:wait())
    p.chan:close()
    r:close()
  end)

  it("a killed parent's pdeathsig child dies; the race with fork is covered", function()
    local r, w = assert(ipc.pipe())
    local mid = S.child(function()
      r:close()
      local p = assert(ipc.spawn { function() ipc.sleep(60) end, pdeathsig = "TERM" })
      local q = assert(ipc.spawn(function() ipc.sleep(60) end)) -- the control
      w:write(("%d %d\n"):format(p.pid, q.pid))
      ipc.sleep(60)
    end)
    w:close()
    local a, b = r:read(64):match("(%d+) (%d+)")
    r:close()
    local hp, hq = assert(ipc.pidfd(tonumber(a))), assert(ipc.pidfd(tonumber(b)))
    assert.is_true(ipc.kill(mid, "KILL"))
    assert.equal("signal 9", S.wait(mid))
    assert.equal("r", ipc.poll({ [hp] = "r" }, 60)[hp])
    assert.is_true(hq:kill(0))
    assert.is_true(hq:kill("KILL"))
    assert.equal("r", ipc.poll({ [hq] = "r" }, 60)[hq])
    hp:close()
    hq:close()
  end)

  it("a step that fails is spawn's failure, and the child is reaped", function()
    assert.same({ nil, "chdir /nonexistent: No such file or directory", E.ENOENT },
      { ipc.spawn { function() end, cwd = "/nonexistent" } })
    assert.same({ nil, "dup2 fds[7]: Bad file descriptor", E.EBADF },
      { ipc.spawn { function() end, fds = { [7] = 999 } } })
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.spawn { function() end, pdeathsgi = "TERM" } end,
      "bad argument #1 to 'spawn' (unknown option 'pdeathsgi')")
    assert.has_error(function() ipc.spawn { function() end, pdeathsig = "NOPE" } end,
      "bad argument #1 to 'spawn' (unknown signal 'NOPE')")
    assert.has_error(function() ipc.spawn { function() end, setsid = 1 } end,
      "bad argument #1 to 'spawn' (option 'setsid' must be a boolean, got number)")
    assert.has_error(function() ipc.spawn { function() end, fds = { [1] = "x" } } end,
      "bad argument #1 to 'spawn' (fds[1]: descriptor expected (unixipc object, io file, integer or object with getfd/fileno), got string)")
    assert.has_error(function() ipc.spawn { "not a function" } end,
      "bad argument #1 to 'spawn' (function expected, got table)")
  end)
end)

describe("ipc.popen where clone(CLONE_VM | CLONE_VFORK) is refused", function()
  local was
  before_each(function() was = ipc._spawnmode("fork") end)
  after_each(function() ipc._spawnmode(was) end)

  it("forks instead, with the same table, the same failures, a pidfd", function()
    assert.equal("fork", ipc._spawnmode())
    local r, w = assert(ipc.pipe())
    local c = assert(ipc.popen({ "sh", "-c", LIST }, { stdout = "pipe", fds = { [5] = w } }))
    local h = assert(c:pidfd())
    assert.equal(c.pid, h:pid())
    h:close()
    assert.equal("0 1 2 5 \n", fdline((c:communicate())))
    r:close()
    w:close()
    assert.same({ nil, "exec unixipc-no-such-program: No such file or directory", E.ENOENT },
      { ipc.popen({ "unixipc-no-such-program" }) })
    assert.same({ nil, "chdir /nonexistent: No such file or directory", E.ENOENT },
      { ipc.popen({ "true" }, { cwd = "/nonexistent" }) })
    c = assert(ipc.popen({ "sort" }, { stdin = "pipe", stdout = "pipe" }))
    assert.same({ "a\nb\n", "", true, "exit", 0 }, { c:communicate("b\na\n") })
  end)
end)
