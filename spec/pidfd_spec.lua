-- Process handles (csrc/pidfd.c): ipc.pidfd, h:wait, h:kill, h:getfd,
-- p:pidfd / p:wait(timeout) on spawned processes, the peer's pidfd on unix
-- sockets (peercred, SCM_PIDFD), and the fallback of a kernel without
-- pidfds. Real children throughout; every forked child ends in _exit.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

-- a child that waits for a byte on a pipe, then exits with code: the test
-- decides when it ends, with no clock involved
local function gated(code)
  local r, w = assert(ipc.pipe())
  local pid = S.child(function()
    w:close()
    r:read(1)
    ipc._exit(code or 0)
  end)
  r:close()
  return pid, w
end

-- a fake scheduler: the waiter yields the running coroutine with what the
-- call waits for; drive() calls onwait() at each wait, polls, and resumes
-- the coroutine until the call returns
local function drive(onwait, fn, ...)
  local waits = {}
  -- (the previous waiter, unixipc.loop's when a spec loaded it, comes back after)
  local prev = ipc._setwaiter(function(fd, events, deadline)
    waits[#waits + 1] = { fd = fd, events = events, deadline = deadline }
    coroutine.yield("wait", fd, events, deadline)
    return true
  end)
  local co = coroutine.create(fn)
  local res = table.pack(coroutine.resume(co, ...))
  while coroutine.status(co) == "suspended" do
    local fd, events, deadline = res[3], res[4], res[5]
    if onwait then onwait() end
    if fd >= 0 then
      local left = deadline and math.max(0, deadline - ipc.monotime()) or nil
      ipc.poll({ [fd] = events }, left)
    end
    res = table.pack(coroutine.resume(co))
  end
  ipc._setwaiter(prev)
  assert(res[1], res[2])
  return waits, table.unpack(res, 2, res.n)
end

describe("ipc.pidfd", function()
  it("waits for a child through its handle, in the shape of os.execute", function()
    local pid, w = gated(3)
    local h = assert(ipc.pidfd(pid))
    assert.truthy(tostring(h):match("^pidfd %(pid " .. pid .. ", fd %d+%)$"))
    assert.equal(pid, h:pid())
    assert.is_true(S.cloexec(h))
    assert.same({}, ipc.poll({ [h] = "r" }, 0)) -- running: not readable
    w:write("x")
    assert.equal("r", ipc.poll({ [h] = "r" }, 30)[h]) -- ended: readable
    assert.same({ nil, "exit", 3 }, { h:wait() })
    assert.same({ nil, "exit", 3 }, { h:wait() }) -- kept
    assert.equal(E.ECHILD, select(3, ipc.waitpid(pid, "nohang"))) -- reaped
    w:close()
    assert.is_true(h:close())
    assert.is_true(h:close())
    assert.equal("pidfd (closed)", tostring(h))
  end)

  it("h:wait(timeout) times out, then reaps once the child ends", function()
    local pid, w = gated(0)
    local h = assert(ipc.pidfd(pid))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { h:wait(0) })
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { h:wait(0.02) })
    w:write("x")
    assert.same({ true, "exit", 0 }, { h:wait(60) })
    w:close()
    h:close()
  end)

  it("h:kill signals through the handle; ESRCH once the process is reaped", function()
    local pid, w = gated(0)
    local h = assert(ipc.pidfd(pid))
    assert.is_true(h:kill(0))
    assert.is_true(h:kill("USR1"))
    assert.same({ nil, "signal", ipc.SIGUSR1 }, { h:wait() })
    local ok, msg, err = h:kill()
    assert.is_nil(ok)
    assert.equal("pidfd_send_signal: No such process", msg)
    assert.equal(E.ESRCH, err)
    w:close()
    h:close()
  end)

  it("h:wait of a process that is not a child says ECHILD; polling still works", function()
    local h = assert(ipc.pidfd(ipc.getppid()))
    local ok, msg, err = h:wait(0)
    assert.is_nil(ok)
    assert.equal("waitid: No child processes", msg)
    assert.equal(E.ECHILD, err)
    assert.same({}, ipc.poll({ [h] = "r" }, 0))
    h:close()
    assert.same({ nil, "pidfd_open: No such process", E.ESRCH }, { ipc.pidfd(0x3ffffff) })
  end)

  it("h:getfd(n) copies a descriptor of the process; h:getfd() is its own number", function()
    local r, w = assert(ipc.pipe())
    local a, b = assert(ipc.socketpair())
    local ready_r, ready_w = assert(ipc.pipe())
    local pid = S.child(function()
      ready_r:close()
      ready_w:write(("%d %d\n"):format(w:fileno(), a:fileno()))
      ipc.sleep(60)
    end)
    ready_w:close()
    local line = ready_r:read(64)
    ready_r:close()
    local wfd, afd = line:match("(%d+) (%d+)")
    w:close()
    a:close()
    local h = assert(ipc.pidfd(pid))
    assert.equal(h:fileno(), h:getfd())
    local wc = assert(h:getfd(tonumber(wfd)))
    assert.truthy(tostring(wc):match("^descriptor %(pipe, fd"))
    assert.is_true(S.cloexec(wc))
    wc:write("through the copy")
    wc:close()
    assert.equal("through the copy", r:read(64))
    local ac = assert(h:getfd(tonumber(afd)))
    assert.equal("unixipc.socket", getmetatable(ac).__name) -- a socket comes back as a socket
    ac:send("hi")
    assert.equal("hi", b:recv(2))
    ac:close()
    local ok, msg, err = h:getfd(1000)
    assert.is_nil(ok)
    assert.equal("pidfd_getfd: Bad file descriptor", msg)
    assert.equal(E.EBADF, err)
    assert.is_true(h:kill("KILL"))
    assert.same({ nil, "signal", 9 }, { h:wait() })
    h:close()
    r:close()
    b:close()
  end)

  it("h:wait inside a task hands its wait to the scheduler and runs again", function()
    local pid, w = gated(7)
    local h = assert(ipc.pidfd(pid))
    -- the child ends only once the call has handed its wait over
    local waits, ok, how, code = drive(function() w:write("x") end, function()
      return h:wait(60)
    end)
    assert.same({ nil, "exit", 7 }, { ok, how, code })
    assert.is_true(#waits >= 1)
    for _, wt in ipairs(waits) do
      assert.equal(h:fileno(), wt.fd)
      assert.equal("r", wt.events)
      assert.is_number(wt.deadline) -- the timeout's deadline, kept across runs
    end
    w:close()
    h:close()
    -- a timeout inside a task
    pid, w = gated(0)
    h = assert(ipc.pidfd(pid))
    local waits2, r1, r2, r3 = drive(nil, function() return h:wait(0.01) end)
    assert.is_true(#waits2 >= 1)
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r1, r2, r3 })
    w:close()
    assert.same({ true, "exit", 0 }, { h:wait() })
    h:close()
  end)

  it("a handle crosses a channel and is still a handle", function()
    local pid, w = gated(5)
    local h = assert(ipc.pidfd(pid))
    local a, b = assert(ipc.socketpair())
    local ca, cb = ipc.channel(a), ipc.channel(b)
    assert(ca:send("take it", { h }))
    local _, fds = cb:recv()
    local h2 = fds[1]
    assert.equal("unixipc.pidfd", getmetatable(h2).__name)
    assert.equal(pid, h2:pid())
    h:close()
    w:write("x")
    assert.same({ nil, "exit", 5 }, { h2:wait() })
    h2:close()
    w:close()
    ca:close()
    cb:close()
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.pidfd() end,
      "bad argument #1 to 'pidfd' (pid must be an integer from 1 to 2147483647, got no value)")
    assert.has_error(function() ipc.pidfd(0) end,
      "bad argument #1 to 'pidfd' (pid must be an integer from 1 to 2147483647, got 0)")
    assert.has_error(function() ipc.pidfd("1") end)
    local h = assert(ipc.pidfd(ipc.getpid()))
    assert.has_error(function() h:wait(-1) end, "bad argument #1 to 'wait' (timeout must not be negative, got -1)")
    assert.has_error(function() h:wait("x") end,
      "bad argument #1 to 'wait' (timeout must be a number of seconds or nil, got string)")
    assert.has_error(function() h:kill("NOPE") end, "bad argument #1 to 'kill' (unknown signal 'NOPE')")
    assert.has_error(function() h:getfd(-1) end,
      "bad argument #1 to 'getfd' (descriptor must be an integer from 0 to 2147483647, got -1)")
    local r, w = assert(ipc.pipe())
    assert.has_error(function() h.wait(r) end, "bad argument #1 to 'wait' (unixipc pidfd expected, got unixipc.fd)")
    assert.has_error(function() h.kill(42) end)
    assert.is_nil(r.kill) -- a pipe has no pidfd methods
    h:close()
    assert.has_error(function() h:wait() end, "attempt to use a closed pidfd")
    assert.has_error(function() h:kill() end, "attempt to use a closed pidfd")
    assert.has_error(function() h:getfd(0) end, "attempt to use a closed pidfd")
    assert.equal(-1, h:getfd())
    r:close()
    w:close()
  end)
end)

describe("spawned processes and their pidfd", function()
  it("p:wait(timeout) waits on the pidfd, times out, and reaps only its own child", function()
    local r, w = assert(ipc.pipe())
    local p = assert(ipc.spawn(function() w:close(); r:read(1) end))
    local other, ow = gated(4) -- another child of ours, ending first
    r:close()
    ow:write("x")
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { p:wait(0.02) })
    assert.equal(4, S.wait(other)) -- p:wait did not reap it
    w:write("x")
    assert.same({ true, "exit", 0 }, { p:wait(60) })
    assert.same({ true, "exit", 0 }, { p:wait() })
    w:close()
    ow:close()
    p.chan:close()
  end)

  it("p:wait inside a task hands its wait to the scheduler", function()
    local r, w = assert(ipc.pipe())
    local p = assert(ipc.spawn(function() w:close(); r:read(1); ipc._exit(3) end))
    r:close()
    local waits, ok, how, code = drive(function() w:write("x") end, function() return p:wait() end)
    assert.is_true(#waits >= 1)
    assert.same({ nil, "exit", 3 }, { ok, how, code })
    w:close()
    p.chan:close()
  end)

  it("p:pidfd() is a handle the caller owns; refused once the child is reaped", function()
    local p = assert(ipc.spawn(function(chan) chan:recv() end))
    local h = assert(p:pidfd())
    assert.equal(p.pid, h:pid())
    assert.is_true(S.cloexec(h))
    assert.same({}, ipc.poll({ [h] = "r" }, 0))
    p.chan:close() -- the child sees end of stream and ends
    assert.equal("r", ipc.poll({ [h] = "r" }, 60)[h])
    assert.same({ true, "exit", 0 }, { p:wait() })
    h:close()
    assert.same({ nil, "pidfd: process already reaped", E.ESRCH }, { p:pidfd() })
  end)

  it("p:kill signals through the pidfd once p has one", function()
    local p = assert(ipc.spawn(function(chan) chan:recv() end))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { p:wait(0) }) -- opens p's pidfd
    assert.is_true(p:kill("KILL"))
    assert.same({ nil, "signal", 9 }, { p:wait() })
    p.chan:close()
  end)

  it("p:wait(timeout) rejects a bad timeout at the caller's line", function()
    local p = assert(ipc.spawn(function() end))
    assert.has_error(function() p:wait(-1) end,
      "bad argument #1 to 'wait' (timeout must be a non-negative number of seconds, got -1)")
    assert.has_error(function() p:wait("soon") end,
      "bad argument #1 to 'wait' (timeout must be a non-negative number of seconds, got string)")
    assert(p:wait())
    p.chan:close()
  end)
end)

describe("without pidfds (the fallback)", function()
  before_each(function() ipc._nopidfd(true) end)
  after_each(function() ipc._nopidfd(false) end)

  it("ipc.pidfd says ENOSYS", function()
    local ok, msg, err = ipc.pidfd(ipc.getpid())
    assert.is_nil(ok)
    assert.equal("pidfd_open: Function not implemented", msg)
    assert.equal(E.ENOSYS, err)
  end)

  it("spawn's p:wait falls back on waitpid, with and without a timeout", function()
    local r, w = assert(ipc.pipe())
    local p = assert(ipc.spawn(function() w:close(); r:read(1); ipc._exit(2) end))
    r:close()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { p:wait(0.01) })
    assert.same({ nil, "pidfd_open: Function not implemented", E.ENOSYS }, { p:pidfd() })
    w:write("x")
    assert.same({ nil, "exit", 2 }, { p:wait(60) })
    local q = assert(ipc.spawn(function() end))
    assert.same({ true, "exit", 0 }, { q:wait() })
    w:close()
    p.chan:close()
    q.chan:close()
  end)

  it("popen runs, waits and kills without a pidfd", function()
    local c = assert(ipc.popen({ "sh", "-c", "exit 6" }))
    assert.same({ nil, "exit", 6 }, { c:wait() })
    c = assert(ipc.popen({ "sleep", "60" }))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { c:wait(0.01) })
    assert.is_true(c:kill())
    assert.same({ nil, "signal", ipc.SIGTERM }, { c:wait() })
    assert.same({ nil, "exec unixipc-no-such-program: No such file or directory", E.ENOENT },
      { ipc.popen({ "unixipc-no-such-program" }) })
  end)
end)

describe("the peer's process as a pidfd", function()
  it("peercred().pidfd is opened when read, names the peer, and is the caller's", function()
    local a, b = assert(ipc.socketpair())
    local before = S.nfds()
    local cred = assert(b:peercred())
    assert.equal(before, S.nfds()) -- nothing opened until read
    assert.same({ pid = ipc.getpid(), uid = cred.uid, gid = cred.gid }, cred)
    local h = cred.pidfd
    assert.equal("unixipc.pidfd", getmetatable(h).__name)
    assert.equal(h, cred.pidfd) -- read once
    assert.equal(ipc.getpid(), h:pid())
    assert.is_true(S.cloexec(h))
    h:close()
    a:close()
    b:close()
    -- a peer that is another process
    local srvdir, cleanup = S.tmpdir()
    local path = srvdir .. "/s"
    local l = assert(ipc.listen(path))
    local pid = S.child(function()
      local c = assert(ipc.connect(path))
      c:recv(1)
    end)
    local c = assert(l:accept())
    cred = assert(c:peercred())
    assert.equal(pid, cred.pidfd:pid())
    assert.is_true(cred.pidfd:kill(0))
    cred.pidfd:close()
    c:close()
    assert.equal(0, S.wait(pid))
    l:close()
    cleanup()
    -- read after the socket is closed: absent
    a, b = assert(ipc.socketpair())
    cred = assert(b:peercred())
    b:close()
    assert.is_nil(cred.pidfd)
    a:close()
  end)

  it("info.pidfd comes with a message when the receiver sets passpidfd", function()
    local a, b = assert(ipc.socketpair("dgram"))
    assert.is_true(b:setoption("passpidfd", true))
    assert.is_true(b:getoption("passpidfd"))
    local pid = S.child(function()
      assert(a:send("from the child"))
    end)
    assert.equal(0, S.wait(pid)) -- the sender is gone, reaped: its pidfd still names it
    local data, fds, info = b:recvmsg()
    assert.equal("from the child", data)
    assert.same({}, fds)
    local h = info.pidfd
    assert.equal("unixipc.pidfd", getmetatable(h).__name)
    assert.is_true(S.cloexec(h))
    assert.same({ nil, "pidfd_send_signal: No such process", E.ESRCH }, { h:kill(0) })
    h:close()
    -- with credentials too: the handle knows the pid
    assert.is_true(b:setoption("passcred", true))
    assert(a:send("again"))
    data, fds, info = b:recvmsg()
    assert.equal(ipc.getpid(), info.cred.pid)
    assert.equal(ipc.getpid(), info.pidfd:pid())
    info.pidfd:close()
    -- without passpidfd: no field, nothing left open
    assert.is_true(b:setoption("passpidfd", false))
    local before = S.nfds()
    assert(a:send("plain"))
    data, fds, info = b:recvmsg()
    assert.is_nil(info.pidfd)
    assert.equal(before, S.nfds())
    a:close()
    b:close()
  end)
end)
