-- unixipc.loop: tasks, their results and errors, timers, joins, cancels,
-- and the waits of unixipc calls handed to the loop from inside a task.
local ipc = require "unixipc"
local loop = require "unixipc.loop"
local S = require "support"

local errno = ipc.errno

-- a task that counts loop turns while the others wait: proof that a wait
-- let the loop run
local function ticker(step)
  local t = { n = 0, stop = false }
  t.task = loop.spawn(function()
    while not t.stop do
      t.n = t.n + 1
      loop.sleep(step or 0.002)
    end
  end)
  return t
end

describe("loop", function()
  it("runs tasks to the end and hands back their results", function()
    local a = loop.spawn(function(x, y) return x + y, "sum" end, 2, 3)
    local b = loop.spawn(function() loop.sleep(0.01) return nil, false end)
    assert.is_true(loop.run())
    assert.same({ true, 5, "sum" }, { a:join() })
    assert.same({ true, nil, false }, { b:join() })
    assert.equal(3, select("#", b:join()))
    assert.equal("done", a:status())
    assert.equal(0, loop.tasks())
    assert.is_true(loop.run()) -- nothing to do
  end)

  it("wakes sleepers in the order of their deadlines", function()
    local order = {}
    for _, d in ipairs { 0.05, 0.01, 0.03, 0.02, 0.04, 0 } do
      loop.spawn(function() loop.sleep(d) order[#order + 1] = d end)
    end
    assert.is_true(loop.run())
    assert.same({ 0, 0.01, 0.02, 0.03, 0.04, 0.05 }, order)
  end)

  it("raises a task's error from run, with the task's traceback", function()
    loop.spawn(function()
      loop.sleep(0.001)
      error("boom in a task")
    end)
    local ok, err = pcall(loop.run)
    assert.is_false(ok)
    assert.matches("boom in a task", err)
    assert.matches("stack traceback", err)
    assert.matches("loop_spec.lua", err)
    assert.equal(0, loop.tasks())
  end)

  it("hands a failure to a task that joins it instead of raising it", function()
    local failing = loop.spawn(function() loop.sleep(0.01) error({ code = 7 }) end)
    local got
    loop.spawn(function() got = { failing:join() } end)
    assert.is_true(loop.run())
    assert.is_nil(got[1])
    assert.same({ code = 7 }, got[2])
    assert.equal("failed", failing:status())
  end)

  it("joins with a timeout, and from outside any task by running the loop", function()
    local slow = loop.spawn(function() loop.sleep(0.05) return "late" end)
    local r
    loop.spawn(function() r = { slow:join(0.001) } end)
    assert.same({ true, "late" }, { slow:join() }) -- runs the loop until slow is done
    assert.same({ nil, "timeout", errno.ETIMEDOUT }, r)
    assert.is_true(loop.run())
  end)

  it("cancels a waiting task: its to-be-closed variables close, joiners hear it", function()
    local a, b = ipc.socketpair()
    local closed = false
    local t = loop.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      a:recv(10) -- never answered
    end)
    local joined
    loop.spawn(function() joined = { t:join() } end)
    loop.spawn(function() loop.sleep(0.01) assert.is_true(t:cancel()) end)
    assert.is_true(loop.run())
    assert.is_true(closed)
    assert.same({ nil, "cancelled" }, joined)
    assert.equal("cancelled", t:status())
    assert.is_false(t:cancel())
    -- a task may cancel itself
    local self
    self = loop.spawn(function() loop.sleep(0.001) self:cancel() error("not reached") end)
    assert.is_true(loop.run())
    assert.equal("cancelled", self:status())
    a:close()
    b:close()
  end)

  it("stops at run's deadline and goes on with the next run", function()
    local a, b = ipc.socketpair()
    local got
    loop.spawn(function() got = a:recv(10) end)
    assert.same({ nil, "timeout", errno.ETIMEDOUT }, { loop.run(0.02) })
    assert.equal(1, loop.tasks())
    b:send("later")
    assert.is_true(loop.run())
    assert.equal("later", got)
    a:close()
    b:close()
  end)

  it("reports a deadlock instead of waiting for ever", function()
    local t1, t2
    t1 = loop.spawn(function() loop.sleep(0.001) t2:join() end)
    t2 = loop.spawn(function() loop.sleep(0.001) t1:join() end)
    local ok, err = pcall(loop.run)
    assert.is_false(ok)
    assert.matches("deadlock", err)
    t1:cancel()
    t2:cancel()
    assert.equal(0, loop.tasks())
  end)

  it("lets a plain coroutine.yield() give the others a turn", function()
    local order = {}
    loop.spawn(function() for i = 1, 3 do order[#order + 1] = "a" .. i loop.yield() end end)
    loop.spawn(function() for i = 1, 3 do order[#order + 1] = "b" .. i coroutine.yield() end end)
    assert.is_true(loop.run())
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, order)
  end)

  it("waits on any descriptor with loop.wait, in a task and outside", function()
    local a, b = ipc.socketpair()
    assert.same({ nil, "timeout", errno.ETIMEDOUT }, { loop.wait(a, "r", 0.01) })
    assert.equal("w", loop.wait(a, "w"))
    local r
    loop.spawn(function() r = { loop.wait(a, "r", 1) } end)
    loop.spawn(function() loop.sleep(0.01) b:send("x") end)
    assert.is_true(loop.run())
    assert.same({ "r" }, r)
    local f = io.tmpfile()
    assert.equal("w", loop.wait(f, "w", 0)) -- io files, like every descriptor argument
    f:close()
    a:close()
    b:close()
  end)

  it("rejects bad arguments", function()
    assert.error_matches(function() loop.spawn(42) end, "bad argument #1 to 'spawn' %(function expected, got number%)")
    assert.error_matches(function() loop.run(-1) end, "bad argument #1 to 'run'")
    assert.error_matches(function() loop.sleep("x") end, "bad argument #1 to 'sleep'")
    assert.error_matches(function() loop.wait(0, "read") end, "bad argument #2 to 'wait' %(events must be letters r, w and p")
    assert.error_matches(function() loop.wait(true, "r") end, "bad argument #1 to 'wait' %(descriptor expected")
    assert.error_matches(function() loop.wait(0, "r", -1) end, "bad argument #3 to 'wait'")
    local t = loop.spawn(function() end)
    assert.error_matches(function() t:join("x") end, "bad argument #1 to 'join'")
    assert.is_true(loop.run())
  end)

  it("keeps a thousand idle tasks waiting while two others talk", function()
    local pairs_, idle = {}, {}
    for i = 1, 1000 do
      local a, b = ipc.socketpair()
      pairs_[i] = { a, b }
      idle[i] = loop.spawn(function() return a:recv(10) end)
    end
    local x, y = ipc.socketpair()
    local rounds = 0
    loop.spawn(function() for _ = 1, 200 do x:send("p") x:recv(1) end end)
    local talker = loop.spawn(function()
      for _ = 1, 200 do y:recv(1) y:send("q") rounds = rounds + 1 end
    end)
    assert.is_true(talker:join()) -- runs the loop until the talk is over
    assert.equal(200, rounds)
    assert.is_true(loop.tasks() >= 1000) -- the idle ones still wait
    for i = 1, 1000 do pairs_[i][2]:send("bye") end
    assert.is_true(loop.run())
    assert.same({ true, "bye" }, { idle[1000]:join() })
    for i = 1, 1000 do S.closeall(pairs_[i]) end
    x:close()
    y:close()
  end)
end)

-- Every call that waits, once outside any task and once inside a task
-- with a ticker running beside it: the same results, and (inside) the
-- ticker moved while the call waited.
describe("cooperative calls", function()
  local dir, cleanup
  setup(function() dir, cleanup = S.tmpdir() end)
  teardown(function() cleanup() end)

  -- each case: function() -> results (normalised to a list), run twice
  local cases = {}
  -- waits: the call really waits, so the ticker must move meanwhile
  local function case(name, fn, waits)
    cases[#cases + 1] = { name = name, fn = fn, waits = waits ~= false }
  end

  case("recv waits for a late sender", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function() ipc.sleep(0.05) b:send("late") end)
    local r = { a:recv(10) }
    S.wait(pid)
    a:close() b:close()
    return r
  end)
  case("recv times out", function()
    local a, b = ipc.socketpair()
    a:settimeout(0.03)
    local r = { a:recv(10) }
    a:close() b:close()
    return r
  end)
  case("recv sees end of stream", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function() ipc.sleep(0.03) b:close() end)
    b:close()
    local r = { a:recv(10) }
    S.wait(pid)
    a:close()
    return r
  end)
  case("non-blocking recv says EAGAIN", function()
    local a, b = ipc.socketpair()
    a:setnonblocking(true)
    local r = { select(3, a:recv(10)) }
    a:close() b:close()
    return r
  end, false)
  case("read on a pipe", function()
    local r, w = ipc.pipe()
    local pid = S.child(function() ipc.sleep(0.03) w:write("piped") end)
    w:close()
    local got = { r:read(10) }
    got[#got + 1] = r:read(10)
    S.wait(pid)
    r:close()
    return got
  end)
  case("sendall fills a full socket buffer as the peer drains it", function()
    local a, b = ipc.socketpair()
    a:setoption("sndbuf", 4096)
    local big = string.rep("z", 1 << 20)
    local pid = S.child(function()
      a:close()
      local n = 0
      while n < #big do
        local d = b:recv(65536)
        if not d then break end
        n = n + #d
        ipc.sleep(0.0005)
      end
      b:send(tostring(n))
    end)
    b:close()
    local r = { a:sendall(big) }
    r[#r + 1] = a:recv(20)
    S.wait(pid)
    a:close()
    return r
  end)
  case("send to a closed peer says EPIPE", function()
    local a, b = ipc.socketpair()
    b:close()
    local r = { select(3, a:send("x")) }
    a:close()
    return r
  end, false)
  case("accept and connect over TCP", function()
    local srv = assert(ipc.listen("127.0.0.1:0"))
    local port = srv:getsockname().port
    local pid = S.child(function()
      ipc.sleep(0.03)
      local c = assert(ipc.connect("127.0.0.1:" .. port))
      c:sendall("hello")
      c:close()
    end)
    local conn = assert(srv:accept())
    local r = { conn:recv(10), conn:recv(10) }
    S.wait(pid)
    conn:close() srv:close()
    return r
  end)
  case("connect refused", function()
    local srv = assert(ipc.listen("127.0.0.1:0"))
    local port = srv:getsockname().port
    srv:close()
    local r = { select(3, ipc.connect("127.0.0.1:" .. port)) }
    return r
  end, false)
  case("connect over a unix path", function()
    local path = dir .. "/coop.sock"
    local srv = assert(ipc.listen(path, { unlink = true }))
    local c = assert(ipc.connect(path))
    local conn = assert(srv:accept())
    c:send("u")
    local r = { conn:recv(1) }
    S.closeall { c, conn, srv }
    return r
  end, false)
  case("accept with a timeout", function()
    local srv = assert(ipc.listen("127.0.0.1:0"))
    srv:settimeout(0.02)
    local r = { srv:accept() }
    srv:close()
    return r
  end)
  case("sendmsg and recvmsg carry a descriptor", function()
    local a, b = ipc.socketpair()
    local r0, w0 = ipc.pipe()
    local pid = S.child(function()
      ipc.sleep(0.03)
      b:sendmsg { data = "fd", fds = { w0 } }
    end)
    local data, fds = a:recvmsg()
    fds[1]:write("through")
    fds[1]:close()
    w0:close()
    local r = { data, #fds, r0:read(10) }
    S.wait(pid)
    S.closeall { a, b, r0 }
    return r
  end)
  case("a channel to a spawned child that answers late", function()
    local p = ipc.spawn(function(ch)
      local v = ch:recv()
      ipc.sleep(0.03)
      ch:send({ echo = v, n = 3 })
    end)
    p.chan:send("ping")
    local r = { p.chan:recv() }
    r[2] = #r[2] -- the fds list
    r[#r + 1] = select(2, p:wait())
    p.chan:close()
    return r
  end)
  case("a signal bridge read", function()
    local sig = ipc.signalfd({ "USR2" })
    local me = ipc.getpid()
    local pid = S.child(function() ipc.sleep(0.03) ipc.kill(me, "USR2") end)
    local info = sig:read()
    local r = { info.name, info.pid == pid, sig:read(0.01) }
    S.wait(pid)
    sig:close()
    return r
  end)
  case("ipc.sleep", function()
    local t0 = ipc.monotime()
    local r = { ipc.sleep(0.03) }
    r[#r + 1] = ipc.monotime() - t0 >= 0.03
    return r
  end)
  case("ipc.poll and a pollset", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function() ipc.sleep(0.03) b:send("x") end)
    local r = { next(ipc.poll({ [a] = "r" }, 0.01)) }
    r[#r + 1] = ipc.poll({ [a] = "r" })[a]
    local ps = ipc.pollset()
    ps:add(a, "r")
    local ready = ps:wait(1)
    r[#r + 1] = ready[a]
    a:recv(1)
    r[#r + 1] = next(ps:wait(0.01))
    ps:close()
    S.wait(pid)
    a:close() b:close()
    return r
  end)
  case("flock waits for a child to let go", function()
    local path = dir .. "/lockfile"
    local f = assert(ipc.open(path, "w+"))
    local r0, w0 = ipc.pipe()
    local pid = S.child(function()
      local g = assert(ipc.open(path, "r+"))
      local l = assert(ipc.flock(g, "ex"))
      w0:write("held")
      ipc.sleep(0.05)
      l:release()
    end)
    w0:close()
    r0:read(4)
    local busy = { ipc.flock(f, "ex", { wait = 0.01 }) }
    local l = ipc.flock(f, "ex")
    local r = { busy[1], busy[2], busy[3], tostring(l):match("^lock %(flock ex") ~= nil }
    l:release()
    S.wait(pid)
    S.closeall { f, r0 }
    return r
  end)
  for _, c in ipairs(cases) do
    it(c.name, function()
      local outside = c.fn()
      local tick = ticker(0.001)
      local inside
      local t = loop.spawn(function()
        local n0 = tick.n
        inside = c.fn()
        if c.waits then assert(tick.n > n0, "the ticker did not run while " .. c.name .. " waited") end
        tick.stop = true
      end)
      assert.is_true(loop.run())
      assert.is_true(t:join())
      assert.same(outside, inside)
    end)
  end

  it("a call whose object another task closes fails with EBADF", function()
    local a, b = ipc.socketpair()
    local r
    loop.spawn(function() r = { a:recv(10) } end)
    loop.spawn(function() loop.sleep(0.01) a:close() end)
    assert.is_true(loop.run())
    assert.same({ nil, "recv: Bad file descriptor", errno.EBADF }, r)
    b:close()
  end)

  it("leaves a blocking call blocking in a plain coroutine outside the loop", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function() ipc.sleep(0.02) b:send("z") end)
    local co = coroutine.wrap(function() return a:recv(1) end)
    assert.equal("z", co())
    S.wait(pid)
    a:close() b:close()
  end)

  it("serves many connections in one process, each handler in blocking style", function()
    local srv = assert(ipc.listen("127.0.0.1:0", { backlog = 512 }))
    local port = srv:getsockname().port
    local served, n = 0, 200
    loop.spawn(function()
      for _ = 1, n do
        local conn = assert(srv:accept())
        loop.spawn(function()
          local line = conn:recv(100)
          loop.sleep(0.01) -- every handler is slow: they must overlap
          conn:sendall("echo " .. line)
          conn:close()
          served = served + 1
        end)
      end
    end)
    local answers = {}
    for i = 1, n do
      loop.spawn(function()
        local c = assert(ipc.connect("127.0.0.1:" .. port))
        c:sendall("n" .. i)
        local a = c:recv(100)
        answers[#answers + 1] = a
        c:close()
      end)
    end
    assert.is_true(loop.run())
    assert.equal(n, served)
    assert.equal(n, #answers)
    srv:close()
  end)
end)
