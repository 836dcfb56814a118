-- Signals through a descriptor (signalfd, or the self-pipe fallback built
-- with SELFPIPE=1), reap(), _sigreset(), and the asynchronous socket events
-- that raise SIGURG and SIGIO. Real signals, real children, real TCP.
local ipc = require "unixipc"
local S = require "support"

local ETIMEDOUT = ipc.errno.ETIMEDOUT

-- /proc/self/status signal masks ("SigBlk", "SigCgt", "SigPnd"...) as integers
local function mask(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(assert(s:match(field .. ":%s*(%x+)")), 16)
end

local function has(m, signo)
  return (m >> (signo - 1)) & 1 == 1
end

local function selfpipe(sig)
  return tostring(sig):match("selfpipe") ~= nil
end

-- O_* status flags of a descriptor, from /proc/self/fdinfo
local function fdflags(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("flags:%s*(%d+)"), 8)
end

local O_ASYNC, O_NONBLOCK = ipc.O_ASYNC, ipc.O_NONBLOCK

local function tcppair()
  local srv = assert(ipc.listen("127.0.0.1:0"))
  local c = assert(ipc.connect(srv:getsockname()))
  assert(c:setoption("nodelay", true))
  local conn = assert(srv:accept())
  srv:close()
  return c, conn
end

describe("signalfd", function()
  it("reads a signal raised at self, with our pid and uid", function()
    local sig = assert(ipc.signalfd({ "USR1" }))
    assert.truthy(tostring(sig):match("^signal %(%a+, fd %d+%)$"))
    assert(ipc.kill(ipc.getpid(), "USR1"))
    local info = assert(sig:read(1))
    assert.equal(ipc.SIGUSR1, info.signo)
    assert.equal("USR1", info.name)
    assert.equal(ipc.getpid(), info.pid)
    local f = assert(io.popen("id -u"))
    local uid = tonumber(f:read("l"))
    f:close()
    assert.equal(uid, info.uid)
    assert.equal(0, info.code) -- SI_USER
    assert.is_nil(info.status)
    assert.is_nil(info.fd)
    assert.is_true(sig:close())
  end)

  it("reads each signal once, and several pending ones all", function()
    local sig = assert(ipc.signalfd({ "USR1", "USR2", "RTMIN" }))
    local me = ipc.getpid()
    ipc.kill(me, "USR1")
    ipc.kill(me, "USR2")
    for _ = 1, 3 do ipc.kill(me, "RTMIN") end -- real-time signals queue
    local got = {}
    for _ = 1, 5 do
      local info = assert(sig:read(1))
      got[info.name] = (got[info.name] or 0) + 1
    end
    assert.same({ USR1 = 1, USR2 = 1, ["RTMIN+0"] = 3 }, got)
    local r, msg, err = sig:read(0)
    assert.is_nil(r)
    assert.equal("timeout", msg)
    assert.equal(ETIMEDOUT, err)
    sig:close()
  end)

  it("names the sending process", function()
    local sig = assert(ipc.signalfd("USR2"))
    local pid = S.child(function()
      assert(ipc.kill(ipc.getppid(), "USR2"))
      return 0
    end)
    local info = assert(sig:read(2))
    assert.equal("USR2", info.name)
    assert.equal(pid, info.pid)
    local _, how, code = ipc.waitpid(pid)
    assert.equal("exit", how)
    assert.equal(0, code)
    sig:close()
  end)

  it("times out, waiting no longer than asked", function()
    local sig = assert(ipc.signalfd({ "USR1" }))
    local t0 = ipc.monotime()
    local r, msg, err = sig:read(0.05)
    local dt = ipc.monotime() - t0
    assert.is_nil(r)
    assert.equal("timeout", msg)
    assert.equal(ETIMEDOUT, err)
    assert.is_true(dt >= 0.04)
    assert.same({ nil, "timeout", ETIMEDOUT }, { sig:read(0) })
    sig:close()
  end)

  it("keeps its deadline when other signals interrupt the wait", function()
    -- with the self-pipe, USR2's handler interrupts poll() (EINTR) again and
    -- again; the wait resumes with the time left, not a fresh timeout
    local a = assert(ipc.signalfd({ "USR1" }))
    local b = assert(ipc.signalfd({ "USR2" }))
    local pid = S.child(function()
      for _ = 1, 12 do
        local t = ipc.monotime() + 0.03
        while ipc.monotime() < t do end
        ipc.kill(ipc.getppid(), "USR2")
      end
      return 0
    end)
    local t0 = ipc.monotime()
    assert.same({ nil, "timeout", ETIMEDOUT }, { a:read(0.15) })
    local dt = ipc.monotime() - t0
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
    assert.is_true(dt >= 0.14 and dt < 0.35, "waited " .. dt)
    assert.equal("USR2", assert(b:read(0)).name)
    a:close()
    b:close()
  end)

  it("waits forever by default until a signal comes", function()
    local sig = assert(ipc.signalfd({ "USR1" }))
    local pid = S.child(function()
      local t = ipc.monotime() + 0.05
      while ipc.monotime() < t do end
      ipc.kill(ipc.getppid(), "USR1")
      return 0
    end)
    local info = assert(sig:read())
    assert.equal(pid, info.pid)
    ipc.waitpid(pid)
    sig:close()
  end)

  it("puts the signal mask back on close, __close and __gc", function()
    local before = mask("SigBlk")
    local sig = assert(ipc.signalfd({ "USR1", "URG" }))
    if selfpipe(sig) then
      -- the handler runs only for unblocked signals: caught, not blocked
      assert.is_true(has(mask("SigCgt"), ipc.SIGUSR1))
      assert.is_false(has(mask("SigBlk"), ipc.SIGUSR1))
    else
      assert.is_true(has(mask("SigBlk"), ipc.SIGUSR1))
      assert.is_true(has(mask("SigBlk"), ipc.SIGURG))
    end
    sig:close()
    assert.equal(before, mask("SigBlk"))
    assert.is_false(has(mask("SigCgt"), ipc.SIGUSR1))
    assert.is_true(sig:close()) -- idempotent
    assert.equal("signal (closed)", tostring(sig))

    do
      local s <close> = assert(ipc.signalfd({ "USR2" }))
      assert.is_true(s:fileno() >= 0)
    end
    assert.equal(before, mask("SigBlk"))

    ipc.signalfd({ "WINCH" })
    collectgarbage()
    collectgarbage()
    assert.equal(before, mask("SigBlk"))
    sig = assert(ipc.signalfd({ "WINCH" })) -- the collected bridge released it
    sig:close()
  end)

  it("discards signals still pending at close", function()
    -- USR1's default action would end this process if it survived the close
    local sig = assert(ipc.signalfd({ "USR1" }))
    ipc.kill(ipc.getpid(), "USR1")
    sig:close()
    assert.is_false(has(mask("SigPnd") | mask("ShdPnd"), ipc.SIGUSR1))
  end)

  it("leaves them pending with drain = false (signalfd)", function()
    local pid = S.child(function()
      local sig = assert(ipc.signalfd({ "USR1" }, { drain = false }))
      ipc.kill(ipc.getpid(), "USR1")
      sig:close() -- signalfd: USR1 now delivered, default action
      return 0
    end)
    local _, how, code = ipc.waitpid(pid)
    local probe = assert(ipc.signalfd({ "USR1" }))
    if selfpipe(probe) then
      -- the handler already took it: nothing is left to deliver
      assert.same({ "exit", 0 }, { how, code })
    else
      assert.same({ "signal", ipc.SIGUSR1 }, { how, code })
    end
    probe:close()
  end)

  it("sees SIGCHLD even when the process started with it ignored", function()
    -- SIG_IGN for SIGCHLD makes the kernel reap children and send nothing;
    -- the bridge sets SIG_DFL while it lives and restores SIG_IGN on close
    if not os.execute("env --ignore-signal=CHLD true 2>/dev/null") then
      return pending("no env --ignore-signal (coreutils >= 9): cannot start a process with SIGCHLD ignored")
    end
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local ipc = require "unixipc"
      local function ign()
        local st = assert(io.open("/proc/self/status"))
        local m = tonumber(st:read("a"):match("SigIgn:%s*(%x+)"), 16)
        st:close()
        return (m >> (ipc.SIGCHLD - 1)) & 1 == 1
      end
      local before = ign()
      local sig = assert(ipc.signalfd({ "CHLD" }))
      local pid = assert(ipc.fork())
      if pid == 0 then ipc._exit(7) end
      local info = sig:read(2)
      local c = ipc.reap()[1]
      sig:close()
      print(before, info and info.pid == pid, c and c.pid == pid and c.code, ign())
    ]])
    f:close()
    local p = assert(io.popen(("env --ignore-signal=CHLD lua5.4 %s 2>&1"):format(script)))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.equal("true\ttrue\t7\ttrue\n", out)
  end)

  it("lets two bridges for disjoint signals coexist, and refuses to share one", function()
    local a = assert(ipc.signalfd({ "USR1" }))
    local b = assert(ipc.signalfd({ "USR2", "SIGHUP" }))
    assert.has_error(function() ipc.signalfd({ "URG", "USR2" }) end,
      "bad argument #1 to 'signalfd' (signal USR2 is already bridged by another live signalfd)")
    assert.has_error(function() ipc.signalfd("SIGUSR1") end,
      "bad argument #1 to 'signalfd' (signal USR1 is already bridged by another live signalfd)")
    ipc.kill(ipc.getpid(), "USR2")
    ipc.kill(ipc.getpid(), "USR1")
    assert.equal("USR1", assert(a:read(1)).name)
    assert.equal("USR2", assert(b:read(1)).name)
    assert.same({ nil, "timeout", ETIMEDOUT }, { a:read(0) })
    assert.same({ "HUP", "USR2" }, b:signals())
    a:close()
    local again = assert(ipc.signalfd({ "USR1" })) -- free once closed
    again:close()
    b:close()
  end)

  it("is inherited by a forked child until _sigreset", function()
    local sig = assert(ipc.signalfd({ "USR1", "URG" }))
    local fd = sig:fileno()
    local sp = selfpipe(sig)
    local kept = S.child(function()
      -- without reset: signalfd keeps them blocked, the fallback its handler
      if sp then return has(mask("SigCgt"), ipc.SIGUSR1) and 0 or 1 end
      return has(mask("SigBlk"), ipc.SIGUSR1) and 0 or 1
    end)
    local reset = S.child(function()
      if ipc._sigreset() ~= 1 then return 2 end
      local blk, cgt = mask("SigBlk"), mask("SigCgt")
      if has(blk, ipc.SIGUSR1) or has(blk, ipc.SIGURG) then return 3 end
      if has(cgt, ipc.SIGUSR1) or has(cgt, ipc.SIGURG) then return 4 end
      if tostring(sig) ~= "signal (closed)" then return 5 end
      if ipc._openfds()[fd] then return 6 end
      if ipc._sigreset() ~= 0 then return 7 end
      return 0
    end)
    assert.same({ kept, "exit", 0 }, { ipc.waitpid(kept) })
    assert.same({ reset, "exit", 0 }, { ipc.waitpid(reset) })
    -- the parent's bridge is untouched
    ipc.kill(ipc.getpid(), "USR1")
    assert.equal("USR1", assert(sig:read(1)).name)
    sig:close()
  end)

  it("plugs into poll, LuaSocket select and cqueues", function()
    local sig = assert(ipc.signalfd({ "USR1" }))
    assert.equal(sig:fileno(), sig:getfd())
    assert.equal(sig:fileno(), sig:pollfd())
    assert.equal("r", sig:events())
    assert.is_nil(sig:timeout())
    assert.same({}, ipc.poll({ [sig] = "r" }, 0))
    ipc.kill(ipc.getpid(), "USR1")
    assert.same({ [sig] = "r" }, ipc.poll({ [sig] = "r" }, 1))
    local okso, socket = pcall(require, "socket")
    if okso then
      local r = socket.select({ sig }, nil, 1)
      assert.equal(sig, r[1])
    end
    local okcq, cqueues = pcall(require, "cqueues")
    if okcq then
      local cq, ready = cqueues.new(), nil
      cq:wrap(function() ready = cqueues.poll(sig, 1) end)
      assert(cq:loop(2))
      cq:close()
      assert.equal(sig, ready)
    end
    assert.equal("USR1", assert(sig:read(0)).name)
    sig:close()
    assert.equal(-1, sig:getfd())
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.signalfd() end,
      "bad argument #1 to 'signalfd' (list of signal names or numbers expected, got no value)")
    assert.has_error(function() ipc.signalfd(true) end,
      "bad argument #1 to 'signalfd' (list of signal names or numbers expected, got boolean)")
    assert.has_error(function() ipc.signalfd({}) end, "bad argument #1 to 'signalfd' (empty signal list)")
    assert.has_error(function() ipc.signalfd({ "NOPE" }) end, "bad argument #1 to 'signalfd' (unknown signal 'NOPE')")
    assert.has_error(function() ipc.signalfd({ "USR1", {} }) end,
      "bad argument #1 to 'signalfd' (signal name or number expected, got table)")
    local range = "bad argument #1 to 'signalfd' (signal number must be an integer from 1 to " .. ipc.SIGRTMAX .. ", got "
    assert.has_error(function() ipc.signalfd({ 1.5 }) end, range .. "1.5)")
    assert.has_error(function() ipc.signalfd({ 0 }) end, range .. "0)")
    assert.has_error(function() ipc.signalfd({ ipc.SIGRTMAX + 1 }) end, range .. (ipc.SIGRTMAX + 1) .. ")")
    assert.has_error(function() ipc.signalfd({ "KILL" }) end,
      "bad argument #1 to 'signalfd' (signal KILL cannot be caught or blocked)")
    assert.has_error(function() ipc.signalfd("SIGSTOP") end,
      "bad argument #1 to 'signalfd' (signal STOP cannot be caught or blocked)")
    assert.has_error(function() ipc.signalfd({ 9 }) end,
      "bad argument #1 to 'signalfd' (signal KILL cannot be caught or blocked)")
    if ipc.SIGRTMIN > 32 then
      assert.has_error(function() ipc.signalfd({ 32 }) end,
        "bad argument #1 to 'signalfd' (signal 32 is reserved by the C library)")
    end
    assert.has_error(function() ipc.signalfd({ "USR1" }, "x") end,
      "bad argument #2 to 'signalfd' (options must be a table, got string)")
    assert.has_error(function() ipc.signalfd({ "USR1" }, { bogus = 1 }) end,
      "bad argument #2 to 'signalfd' (unknown option 'bogus')")
    assert.has_error(function() ipc.signalfd({ "USR1" }, { drain = "yes" }) end,
      "bad argument #2 to 'signalfd' (option 'drain' must be a boolean, got string)")
    -- nothing was blocked by the failed calls
    assert.is_false(has(mask("SigBlk"), ipc.SIGUSR1))

    local sig = assert(ipc.signalfd({ "USR1" }))
    assert.has_error(function() sig:read("soon") end,
      "bad argument #1 to 'read' (timeout must be a number of seconds or nil, got string)")
    assert.has_error(function() sig:read(-1) end, "bad argument #1 to 'read' (timeout must not be negative, got -1)")
    assert.has_error(function() sig.read(42) end)
    assert.has_error(function() sig.read(io.stdout) end)
    sig:close()
    assert.has_error(function() sig:read(0) end, "attempt to use a closed signal bridge")
    assert.has_error(function() sig:fileno() end, "attempt to use a closed signal bridge")
    assert.has_error(function() sig:events() end, "attempt to use a closed signal bridge")
    assert.has_error(function() sig:signals() end, "attempt to use a closed signal bridge")
    assert.has_error(function() sig.close("x") end)
    assert.has_error(function() ipc.poll({ [sig] = "r" }, 0) end)
  end)
end)

describe("reap", function()
  it("returns an empty list without children", function()
    assert.same({}, ipc.reap())
  end)

  it("collects five children behind coalesced SIGCHLDs", function()
    local sig = assert(ipc.signalfd({ "CHLD" }))
    local want = {}
    for i = 1, 5 do
      want[S.child(function() return i end)] = i
    end
    local first = assert(sig:read(2))
    assert.equal("CHLD", first.name)
    assert.is_not_nil(want[first.pid])
    assert.equal(want[first.pid], first.status)
    local got, n = {}, 0
    local deadline = ipc.monotime() + 5
    while n < 5 and ipc.monotime() < deadline do
      for _, c in ipairs(ipc.reap()) do
        assert.equal("exit", c.how)
        got[c.pid] = c.code
        n = n + 1
      end
      if n < 5 then sig:read(0.2) end
    end
    assert.same(want, got)
    assert.same({}, ipc.reap())
    sig:close()
  end)

  it("reports how a child was killed", function()
    local pid = S.child(function()
      while true do ipc.poll({}, 1) end
    end)
    ipc.kill(pid, "TERM")
    local got
    local deadline = ipc.monotime() + 5
    repeat
      got = ipc.reap()[1]
      if not got then ipc.poll({}, 0.01) end
    until got or ipc.monotime() > deadline
    assert.same({ pid = pid, how = "signal", code = ipc.SIGTERM }, got)
  end)
end)

describe("asynchronous socket events", function()
  it("sets and reads the owner of a descriptor", function()
    local a, b = ipc.socketpair()
    assert.equal(0, a:getowner())
    assert.is_true(a:setowner(ipc.getpid()))
    assert.equal(ipc.getpid(), a:getowner())
    assert.is_true(b:setowner()) -- default: this process
    assert.equal(ipc.getpid(), b:getowner())
    local f = assert(io.open("/proc/self/stat"))
    local pgrp = tonumber(f:read("l"):match("^%d+ %b() %S+ %d+ (%d+)"))
    f:close()
    assert.is_true(a:setowner(-pgrp))
    assert.equal(-pgrp, a:getowner())
    assert.is_true(a:setowner(0))
    assert.equal(0, a:getowner())
    local r, w = ipc.pipe()
    assert.is_true(r:setowner())
    assert.equal(ipc.getpid(), r:getowner())
    a:close(); b:close(); r:close(); w:close()
  end)

  it("toggles O_ASYNC and keeps the other status flags", function()
    local a, b = ipc.socketpair()
    a:setnonblocking(true)
    assert.is_true(a:setasync(true))
    local fl = fdflags(a:fileno())
    assert.equal(O_ASYNC, fl & O_ASYNC)
    assert.equal(O_NONBLOCK, fl & O_NONBLOCK)
    assert.is_true(a:setasync(false))
    fl = fdflags(a:fileno())
    assert.equal(0, fl & O_ASYNC)
    assert.equal(O_NONBLOCK, fl & O_NONBLOCK)
    -- the object still knows it is non-blocking
    local r, _, err = a:recv(10)
    assert.is_nil(r)
    assert.equal(ipc.errno.EAGAIN, err)
    a:close(); b:close()
  end)

  it("brings SIGIO through the bridge for O_ASYNC on a socketpair", function()
    local a, b = ipc.socketpair()
    local sig = assert(ipc.signalfd({ "IO" }))
    assert(b:setowner())
    assert(b:setasync(true))
    assert(a:send("ping"))
    local info = assert(sig:read(2))
    assert.equal("IO", info.name)
    assert.equal(ipc.SIGIO, info.signo)
    assert.equal("ping", b:recv(10))
    -- naming the signal (F_SETSIG) makes the kernel say which descriptor
    assert(b:setasync(true, "IO"))
    while sig:read(0) do end
    assert(a:send("pong"))
    info = assert(sig:read(2))
    assert.equal("IO", info.name)
    assert.equal(b:fileno(), info.fd)
    assert.equal(ipc.POLLIN, info.band & ipc.POLLIN)
    assert.equal("pong", b:recv(10))
    -- SIGIO's default action ends the process: close the async side (its
    -- peer's close would raise SIGIO) before the bridge
    b:close(); a:close(); sig:close()
  end)

  it("brings SIGURG for TCP urgent data; the urgent byte comes apart", function()
    local c, conn = tcppair()
    local sig = assert(ipc.signalfd({ "URG" }))
    assert(conn:setowner(ipc.getpid()))
    assert(c:send("abc"))
    assert.equal(1, c:send("!", "oob"))
    local info = assert(sig:read(2))
    assert.equal("URG", info.name)
    assert.equal(ipc.SIGURG, info.signo)
    assert.equal("!", conn:recv(1, "oob"))
    assert.equal("abc", conn:recv(100))
    sig:close(); c:close(); conn:close()
  end)

  it("stops a read at the urgent mark, and atmark() says so", function()
    local c, conn = tcppair()
    local sig = assert(ipc.signalfd({ "URG" }))
    assert(conn:setowner())
    assert(c:send("abc"))
    assert(c:send("!", ipc.MSG_OOB))
    assert(c:send("def"))
    assert(sig:read(2))
    assert.same({ [conn] = "r" }, ipc.poll({ [conn] = "r" }, 2))
    assert.is_false(conn:atmark())
    assert.equal("abc", conn:recv(100)) -- stops at the mark even with more queued
    assert.is_true(conn:atmark())
    assert.equal("!", conn:recv(1, "oob"))
    assert.equal("def", conn:recv(100))
    assert.is_false(conn:atmark())
    sig:close(); c:close(); conn:close()
  end)

  it("keeps the urgent byte inline with oobinline", function()
    local c, conn = tcppair()
    assert(conn:setoption("oobinline", true))
    assert(c:send("abc"))
    assert(c:send("!", "oob"))
    assert(c:send("def"))
    assert.equal("abc", conn:recv(100))
    assert.is_true(conn:atmark())
    local rest = ""
    while #rest < 4 do rest = rest .. assert(conn:recv(100)) end
    assert.equal("!def", rest)
    c:close(); conn:close()
  end)

  it("sends no SIGURG to a socket without an owner", function()
    local c, conn = tcppair()
    local sig = assert(ipc.signalfd({ "URG" }))
    assert(c:send("!", "oob"))
    assert.same({ nil, "timeout", ETIMEDOUT }, { sig:read(0.05) })
    assert.equal("!", conn:recv(1, "oob"))
    sig:close(); c:close(); conn:close()
  end)

  it("rejects bad arguments", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    -- a negative owner is a process group; INT_MIN has no positive group
    local range = "bad argument #1 to 'setowner' (pid must be an integer from -2147483647 to 2147483647, got "
    assert.has_error(function() a:setowner("me") end, range .. "string)")
    assert.has_error(function() a:setowner(1.5) end, range .. "1.5)")
    assert.has_error(function() a:setowner(1 << 40) end, range .. "1099511627776)")
    assert.has_error(function() a:setowner(-2147483648) end, range .. "-2147483648)")
    assert.has_error(function() a:setasync() end, "bad argument #1 to 'setasync' (boolean expected, got no value)")
    assert.has_error(function() a:setasync("yes") end, "bad argument #1 to 'setasync' (boolean expected, got string)")
    assert.has_error(function() a:setasync(true, "NOPE") end, "bad argument #2 to 'setasync' (unknown signal 'NOPE')")
    assert.is_nil(r.atmark)
    assert.has_error(function() a.atmark(r) end)
    local nope, msg, err = a:setowner(999999999)
    assert.is_nil(nope)
    assert.truthy(msg:match("^fcntl: "))
    assert.equal(ipc.errno.ESRCH, err)
    a:close(); b:close(); r:close(); w:close()
    assert.has_error(function() a:setowner() end, "attempt to use a closed socket")
    assert.has_error(function() a:getowner() end, "attempt to use a closed socket")
    assert.has_error(function() a:setasync(true) end, "attempt to use a closed socket")
    assert.has_error(function() a:atmark() end, "attempt to use a closed socket")
    assert.has_error(function() r:setowner() end, "attempt to use a closed descriptor")
  end)
end)

describe("exec under a live bridge (review fix)", function()
  it("gives the program the signals that were ignored before the bridge", function()
    -- a shell ignores HUP (nohup-style), then runs Lua, which bridges HUP and
    -- execs a program: that program must still ignore HUP
    local code = [[
      local ipc = require "unixipc"
      local sig = assert(ipc.signalfd({ "HUP" }))
      local pid = ipc.fork()
      if pid == 0 then
        ipc.exec("sh", { "-c", "grep SigIgn /proc/self/status" })
        ipc._exit(127)
      end
      ipc.waitpid(pid)
      sig:close()
    ]]
    local p = io.popen(("trap '' HUP; LUA_PATH='lua/?.lua;;' LUA_CPATH=%s lua5.4 -e %s"):format(
      S.quote(os.getenv("LUA_CPATH") or "build/?.so;;"), S.quote(code)))
    local out = p:read("a")
    p:close()
    local mask = tonumber(out:match("SigIgn:%s*(%x+)"), 16)
    assert.is_not_nil(mask, out)
    assert.equal(1, mask & 1, "SIGHUP (bit 0) ignored in the exec'd program")
  end)
end)

describe("a bridge stripped of its metatable (review fix)", function()
  -- debug.setmetatable(bridge, nil) means its __gc never runs: the bridge
  -- then stays open (leaked, like a forgotten descriptor), and what the
  -- module keeps about live bridges must not point into freed memory
  it("is leaked open, and exec still restores the mask from it", function()
    local pid = S.child(function()
      local sig = assert(ipc.signalfd({ "USR2" }))
      debug.setmetatable(sig, nil)
      sig = nil -- luacheck: ignore
      for _ = 1, 3 do collectgarbage() end
      -- still live: the signal is still bridged
      local ok, err = pcall(ipc.signalfd, { "USR2" })
      if ok or not tostring(err):match("already bridged") then return 3 end
      -- exec walks the live bridges for the mask to hand on
      ipc.exec("/bin/sh", { "-c", "exit 7" })
      return 4
    end)
    local _, how, code = ipc.waitpid(pid)
    assert.equal("exit", how)
    assert.equal(7, code)
  end)
end)
