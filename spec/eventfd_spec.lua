-- Counters shared by processes (csrc/eventfd.c): ipc.eventfd, e:add,
-- e:take, counter and semaphore modes, non-blocking and timeouts, polling,
-- two processes sharing a semaphore, an eventfd passed over a channel.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

describe("ipc.eventfd", function()
  it("counts: add adds, take takes the whole count", function()
    local e = assert(ipc.eventfd())
    assert.truthy(tostring(e):match("^eventfd %(fd %d+%)$"))
    assert.equal("unixipc.eventfd", getmetatable(e).__name)
    assert.is_true(S.cloexec(e))
    assert.is_true(e:add(2))
    assert.is_true(e:add()) -- 1
    assert.is_true(e:add(40))
    assert.equal(43, e:take())
    e:close()
    e = assert(ipc.eventfd(7))
    assert.equal(7, e:take())
    e:close()
  end)

  it("semaphore mode: each take takes one", function()
    local e = assert(ipc.eventfd(2, { semaphore = true, nonblock = true }))
    assert.is_true(e:add(1))
    assert.equal(1, e:take())
    assert.equal(1, e:take())
    assert.equal(1, e:take())
    local ok, msg, err = e:take()
    assert.is_nil(ok)
    assert.equal("read: Resource temporarily unavailable", msg)
    assert.equal(E.EAGAIN, err)
    e:close()
  end)

  it("is readable while the count is not zero", function()
    local e = assert(ipc.eventfd())
    assert.same({}, ipc.poll({ [e] = "r" }, 0))
    assert.equal("w", ipc.poll({ [e] = "rw" }, 0)[e])
    e:add(5)
    assert.equal("rw", ipc.poll({ [e] = "rw" }, 0)[e])
    local ps = ipc.pollset()
    ps:add(e, "r")
    assert.equal("r", ps:wait(0)[e])
    assert.equal(5, e:take())
    assert.same({}, ps:wait(0))
    ps:close()
    e:close()
  end)

  it("take waits as reads do: timeouts, non-blocking, EAGAIN", function()
    local e = assert(ipc.eventfd())
    assert.is_true(e:settimeout(0.02))
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { e:take() })
    assert.is_true(e:settimeout(nil))
    assert.is_true(e:setnonblocking(true))
    assert.same({ nil, "read: Resource temporarily unavailable", E.EAGAIN }, { e:take() })
    -- add waits when the counter would pass its maximum (2^64 - 2)
    assert.is_true(e:add(math.maxinteger))
    assert.is_true(e:add(math.maxinteger))
    assert.same({ nil, "write: Resource temporarily unavailable", E.EAGAIN }, { e:add(1) })
    local n = e:take() -- 2^64 - 2: more than an integer holds
    assert.equal("float", math.type(n))
    assert.equal(2.0 ^ 64 - 2, n)
    e:close()
  end)

  it("is a semaphore two processes share", function()
    -- the semaphore (1 token) guards a counter kept in a shared memfd: each
    -- process adds 1 to it 200 times, reading and writing it back under
    -- the semaphore; a lost update would show in the total
    local sem = assert(ipc.eventfd(1, { semaphore = true }))
    local m = assert(ipc.memfd("counter"))
    assert.equal(8, m:write(string.pack("<j", 0)))
    local function bump(times)
      for _ = 1, times do
        assert.equal(1, sem:take())
        m:seek("set", 0)
        local n = string.unpack("<j", m:read(8))
        m:seek("set", 0)
        m:write(string.pack("<j", n + 1))
        assert(sem:add(1))
      end
    end
    local pid = S.child(function() bump(200) end)
    bump(200)
    assert.equal(0, S.wait(pid))
    m:seek("set", 0)
    assert.equal(400, string.unpack("<j", m:read(8)))
    -- and it blocks: a child waits for a token the parent gives it
    local r, w = assert(ipc.pipe())
    assert.equal(1, sem:take()) -- no token left
    pid = S.child(function()
      r:close()
      assert.equal(1, sem:take())
      w:write("got it")
    end)
    w:close()
    assert.same({}, ipc.poll({ [r] = "r" }, 0.02)) -- still waiting
    assert.is_true(sem:add(1))
    assert.equal("got it", r:read(16))
    assert.equal(0, S.wait(pid))
    r:close()
    m:close()
    sem:close()
  end)

  it("crosses a channel and arrives as an eventfd", function()
    local a, b = assert(ipc.socketpair())
    local ca, cb = ipc.channel(a), ipc.channel(b)
    local e = assert(ipc.eventfd(0, { semaphore = true }))
    local pid = S.child(function()
      ca:close()
      local v, fds = assert(cb:recv())
      assert(v == "here is a semaphore")
      local got = fds[1]
      assert(getmetatable(got).__name == "unixipc.eventfd")
      for _ = 1, 3 do assert(got:add(1)) end
      got:close()
      cb:close()
    end)
    cb:close()
    assert.is_true(ca:send("here is a semaphore", { e }))
    for _ = 1, 3 do assert.equal(1, e:take()) end
    assert.equal(0, S.wait(pid))
    ca:close()
    e:close()
  end)

  it("take inside a task hands its wait to the scheduler", function()
    local e = assert(ipc.eventfd())
    local waits = {}
    local prev = ipc._setwaiter(function(fd, events) -- a fake scheduler; the real one comes back after
      waits[#waits + 1] = events
      coroutine.yield(fd)
      return true
    end)
    local co = coroutine.wrap(function() return e:take() end)
    local fd = co()
    assert.equal(e:fileno(), fd)
    assert.same({ "r" }, waits)
    e:add(9)
    assert.equal(9, co())
    ipc._setwaiter(prev)
    e:close()
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.eventfd(-1) end,
      "bad argument #1 to 'eventfd' (initval must be an integer from 0 to 4294967295, got -1)")
    assert.has_error(function() ipc.eventfd(1.5) end)
    assert.has_error(function() ipc.eventfd(0, { semaphor = true }) end,
      "bad argument #2 to 'eventfd' (unknown option 'semaphor')")
    assert.has_error(function() ipc.eventfd(0, { semaphore = 1 }) end,
      "bad argument #2 to 'eventfd' (option 'semaphore' must be a boolean, got number)")
    assert.has_error(function() ipc.eventfd(0, "semaphore") end,
      "bad argument #2 to 'eventfd' (options must be a table, got string)")
    local e = assert(ipc.eventfd())
    assert.has_error(function() e:add(-1) end,
      "bad argument #1 to 'add' (n must be an integer from 0 to 9223372036854775807, got -1)")
    assert.has_error(function() e:add("1") end)
    local r, w = assert(ipc.pipe())
    assert.has_error(function() e.take(r) end,
      "bad argument #1 to 'take' (unixipc eventfd expected, got unixipc.fd)")
    assert.is_nil(r.take)
    e:close()
    assert.has_error(function() e:take() end, "attempt to use a closed eventfd")
    assert.has_error(function() e:add(1) end, "attempt to use a closed eventfd")
    assert.equal("eventfd (closed)", tostring(e))
    r:close()
    w:close()
  end)
end)
