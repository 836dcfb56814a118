-- What a read of the C core found, each kept fixed by a spec: tables that
-- change while a call reads them, objects closed while a task waits on
-- them, a regular file polled inside a task, spawn's report pipe among
-- the descriptors it places, a twin clearing O_NONBLOCK under a task.
local ipc = require "unixipc"
local loop = require "unixipc.loop"
local S = require "support"

local E = ipc.errno

describe("review fixes", function()
  it("exec refuses an fds table that a foreign getfd grows while it is read", function()
    local fds
    local foreign = { getfd = function() for i = 10, 40 do fds[i] = 2 end return 1 end }
    fds = { [0] = foreign }
    assert.error_matches(function() ipc.exec("/nonexistent/prog", {}, nil, { fds = fds }) end,
      "bad argument #4 to 'exec' %(option 'fds' changed while it was read%)")
  end)

  it("sendmsg sends no number whose object a later foreign getfd closed", function()
    local a, b = ipc.socketpair("dgram")
    local r, w = ipc.pipe()
    -- the getfd closes the pipe end listed before it, then opens a file
    -- that takes its number: without the check that number went out
    local stranger
    finally(function() S.closeall { a, b, r, w, stranger } end)
    local foreign = { getfd = function()
      r:close()
      stranger = assert(ipc.open("/dev/null"))
      return w:fileno()
    end }
    assert.error_matches(function() a:sendmsg { data = "x", fds = { r, foreign } } end,
      "bad argument #1 to 'sendmsg' %(fds%[1%]: attempt to use a closed")
    -- an entry the getfd replaced in the list is refused too
    local list
    local swap = { getfd = function() list[1] = w; return w:fileno() end }
    list = { stranger, swap }
    assert.error_matches(function() a:sendmsg { data = "x", fds = list } end,
      "bad argument #1 to 'sendmsg' %(fds%[1%] changed while the descriptors were collected%)")
    -- and nothing reached the peer
    assert.same({}, ipc.poll({ [b] = "r" }, 0))
  end)

  it("recvmsg reads a scatter list's sizes once, whatever a finalizer does to the list", function()
    local a, b = ipc.socketpair("stream")
    local sizes = { 7, 8 }
    local mt = { __gc = function() sizes[1] = 1 << 20 end }
    b:send(string.rep("z", 100))
    for _ = 1, 50 do setmetatable({}, mt) end -- finalizers due during recvmsg's allocations
    local data = assert(a:recvmsg { size = sizes })
    assert.same({ 7, 8 }, { #data[1], #data[2] })
    S.closeall { a, b }
  end)

  it("a call whose object another task closes fails with EBADF, whatever the object", function()
    local function try(mk, call)
      local obj, keep = mk()
      local r
      loop.spawn(function() r = { call(obj) } end)
      loop.spawn(function() loop.sleep(0.02) obj:close() end)
      assert.is_true(loop.run(10))
      if keep then S.closeall(keep) end
      return r
    end
    assert.same({ nil, "read: Bad file descriptor", E.EBADF },
      try(function() local r, w = ipc.pipe() return r, { w } end, function(o) return o:read(10) end))
    assert.same({ nil, "read: Bad file descriptor", E.EBADF },
      try(function() return ipc.signalfd({ "USR1" }) end, function(o) return o:read() end))
    assert.same({ nil, "poll: Bad file descriptor", E.EBADF },
      try(function()
        local r, w = ipc.pipe()
        local ps = ipc.pollset()
        ps:add(r, "r")
        return ps, { r, w }
      end, function(o) return o:wait() end))
  end)

  it("ipc.poll in a task reports a key another task closed as 'n'", function()
    local r, w = ipc.pipe()
    local got
    loop.spawn(function() got = ipc.poll({ [r] = "r" }) end)
    loop.spawn(function() loop.sleep(0.02) r:close() end)
    assert.is_true(loop.run(30))
    assert.equal("n", got[r])
    w:close()
  end)

  it("polls a regular file for urgent data in a task without spinning", function()
    local f = assert(io.open("/etc/hostname"))
    local ticks, got = 0, nil
    loop.spawn(function() for _ = 1, 5 do loop.sleep(0.01) ticks = ticks + 1 end end)
    loop.spawn(function() got = { ipc.poll({ [f] = "p" }, 0.1) } end)
    assert.is_true(loop.run(30))
    assert.equal(5, ticks)
    assert.same({ {} }, got)
    f:close()
  end)

  it("spawn puts a descriptor on the number its report pipe would have had", function()
    local x = assert(io.open("/etc/hostname"))
    -- the numbers the next socketpair and pipe take: spawn's channel, then its report pipe
    local s1, s2 = ipc.socketpair()
    local p1, p2 = ipc.pipe()
    local target = p2:fileno()
    S.closeall { s1, s2, p1, p2 }
    local p = assert(ipc.spawn { function(chan, t)
      local fds = ipc._openfds()
      chan:send(fds[t] or "closed")
    end, target, fds = { [target] = x } })
    assert.equal("/etc/hostname", (p.chan:recv()))
    assert.is_true(p:wait())
    p.chan:close()
    x:close()
  end)

  it("a socket in a task does not block the loop when a twin cleared O_NONBLOCK", function()
    local a, b = ipc.socketpair()
    local got
    loop.spawn(function()
      assert.is_nil(a:recv(1, "dontwait")) -- (the task has met the socket)
      local twin = a:dup()
      twin:setnonblocking(false) -- the shared description is blocking again
      twin:close()
      got = a:recv(10)
    end)
    loop.spawn(function() loop.sleep(0.05) b:send("late") end)
    assert.is_true(loop.run(30))
    assert.equal("late", got)
    S.closeall { a, b }
  end)

  it("names fds[0] in a message about the descriptor for 0", function()
    assert.error_matches(function() ipc.exec("/bin/true", {}, nil, { fds = { [0] = true } }) end,
      "%(fds%[0%]: descriptor expected")
  end)
end)
