-- csrc/wait.c: every wait of the C core. Outside a task a call waits in
-- poll(2) itself; inside a coroutine with a waiter installed it hands
-- (fd, events, deadline) to the waiter and runs again with its progress
-- kept. A small driver stands in for a scheduler here, so that what the
-- core hands over can be looked at; unixipc.loop is specified in
-- loop_spec.lua.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

-- run fn in a coroutine with a waiter that records each hand-off, waits
-- for it with ipc.poll, and calls between(n) before the nth resume
local function drive(between, fn)
  local waits = {}
  local prev = ipc._setwaiter(function(fd, events, deadline)
    waits[#waits + 1] = { fd = fd, events = events, deadline = deadline }
    coroutine.yield(fd, events, deadline)
    return true
  end)
  local co = coroutine.create(fn)
  local res = table.pack(coroutine.resume(co))
  while coroutine.status(co) == "suspended" do
    local fd, events, deadline = res[2], res[3], res[4]
    if between then between(#waits) end
    local left = deadline and math.max(0, deadline - ipc.monotime()) or nil
    if fd >= 0 then ipc.poll({ [fd] = events }, left) else ipc.sleep(left or 0) end
    res = table.pack(coroutine.resume(co))
  end
  ipc._setwaiter(prev)
  assert(res[1], res[2])
  return waits, table.unpack(res, 2, res.n)
end

describe("wait.c", function()
  it("monotime only goes forward, and sleep lasts at least its time", function()
    local t0 = ipc.monotime()
    ipc.sleep(0.02)
    local t1 = ipc.monotime()
    assert.is_true(t1 - t0 >= 0.02)
    assert.is_true(ipc.monotime() >= t1)
  end)

  it("a timeout outside a task is nil, 'timeout', ETIMEDOUT, after the time given", function()
    local a, b = assert(ipc.socketpair())
    b:settimeout(0.02)
    local t0 = ipc.monotime()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { b:recv(1) })
    assert.is_true(ipc.monotime() - t0 >= 0.02)
    S.closeall { a, b }
  end)

  it("hands a read's wait to the waiter with the descriptor, 'r' and no deadline", function()
    local a, b = assert(ipc.socketpair())
    local waits, data = drive(function() a:send("x") end, function() return b:recv(1) end)
    assert.equal("x", data)
    assert.equal(1, #waits)
    assert.same({ fd = b:fileno(), events = "r" }, waits[1])
    S.closeall { a, b }
  end)

  it("hands over the object's deadline, and times out with the same result as outside", function()
    local a, b = assert(ipc.socketpair())
    b:settimeout(0.02)
    local before = ipc.monotime()
    local waits, r1, r2, r3 = drive(nil, function() return b:recv(1) end)
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { r1, r2, r3 })
    assert.is_true(#waits >= 1)
    assert.is_true(waits[1].deadline >= before + 0.02)
    S.closeall { a, b }
  end)

  it("keeps a write's progress across hand-offs: sendall sends every byte once", function()
    local a, b = assert(ipc.socketpair())
    local big = string.rep("0123456789", 100000) -- more than the socket buffer
    local got = {}
    local waits, ok = drive(function()
      -- the peer drains what is there each time the writer waits
      while ipc.poll({ [b] = "r" }, 0)[b] do got[#got + 1] = b:recv(65536) end
    end, function() return a:sendall(big) end)
    assert.is_true(ok)
    assert.is_true(#waits >= 1)
    assert.equal("w", waits[1].events)
    while #table.concat(got) < #big do got[#got + 1] = b:recv(65536) end
    assert.equal(big, table.concat(got))
    S.closeall { a, b }
  end)

  it("a sleep inside a task is a hand-off of descriptor -1 until its deadline", function()
    local t0 = ipc.monotime()
    local waits = drive(nil, function() ipc.sleep(0.02) end)
    assert.equal(1, #waits)
    assert.equal(-1, waits[1].fd)
    assert.is_true(waits[1].deadline >= t0 + 0.02)
    assert.is_true(ipc.monotime() - t0 >= 0.02)
  end)

  it("a call whose object is closed while it waits fails with EBADF", function()
    local a, b = assert(ipc.socketpair())
    local _, r1, r2, r3 = drive(function() b:close() end, function() return b:recv(1) end)
    assert.is_nil(r1)
    assert.matches("^recv: ", r2)
    assert.equal(E.EBADF, r3)
    a:close()
  end)

  it("refuses a waiter that is not a function", function()
    assert.error_matches(function() ipc._setwaiter(42) end, "bad argument #1 to '_setwaiter'")
  end)
end)
