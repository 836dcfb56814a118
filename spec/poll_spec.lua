local ipc = require "unixipc"
local S = require "support"

describe("poll", function()
  it("reports ready descriptors and {} on timeout", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    local ready = ipc.poll({ [a] = "r", [r] = "r" }, 0.01)
    assert.same({}, ready)
    b:send("x")
    w:write("y")
    ready = ipc.poll({ [a] = "rw", [r] = "r", [w] = "w" }, 1)
    assert.equal("rw", ready[a])
    assert.equal("r", ready[r])
    assert.equal("w", ready[w])
    a:close()
    b:close()
    r:close()
    w:close()
  end)

  it("reports hang-up and urgent data", function()
    local r, w = ipc.pipe()
    w:close()
    assert.equal("h", ipc.poll({ [r] = "r" }, 0)[r])
    r:close()
    local srv = assert(ipc.listen("127.0.0.1:0"))
    local c = assert(ipc.connect(srv:getsockname()))
    local conn = assert(srv:accept())
    c:send("!", "oob")
    local ready = ipc.poll({ [conn] = "p" }, 1)
    assert.matches("p", ready[conn])
    assert.equal("!", conn:recv(1, "oob"))
    c:close()
    conn:close()
    srv:close()
  end)

  it("waits without a timeout until a child writes", function()
    local r, w = ipc.pipe()
    local pid = S.child(function()
      r:close()
      w:write("late")
    end)
    w:close()
    local ready = ipc.poll({ [r] = "r" })
    assert.matches("^r", ready[r]) -- "rh" once the child has exited
    assert.equal("late", r:read(10))
    r:close()
    assert.equal(0, S.wait(pid))
  end)

  it("has no FD_SETSIZE limit: descriptors above 1024 work", function()
    local pairs_ = {}
    local ok = true
    for i = 1, 600 do
      local r, w = ipc.pipe()
      if not r then
        ok = false
        break
      end
      pairs_[i] = { r, w }
    end
    if not ok then
      for _, p in ipairs(pairs_) do p[1]:close(); p[2]:close() end
      pending("the descriptor limit is below 1200 here")
      return
    end
    local set = {}
    for _, p in ipairs(pairs_) do set[p[1]] = "r" end
    local last = pairs_[#pairs_]
    assert.is_true(last[1]:fileno() > 1024)
    last[2]:write("!")
    local ready = ipc.poll(set, 1)
    local n = 0
    for k, v in pairs(ready) do
      n = n + 1
      assert.equal(last[1], k)
      assert.equal("r", v)
    end
    assert.equal(1, n)
    for _, p in ipairs(pairs_) do p[1]:close(); p[2]:close() end
  end)

  it("accepts integers and io files as keys", function()
    local r, w = ipc.pipe()
    w:write("z")
    local fd = r:fileno()
    local ready = ipc.poll({ [fd] = "r", [io.stderr] = "w" }, 0)
    assert.equal("r", ready[fd])
    r:close()
    w:close()
  end)

  it("rejects bad arguments", function()
    local r, w = ipc.pipe()
    assert.error_matches(function() ipc.poll() end, "bad argument #1 to 'poll' %(table expected")
    assert.error_matches(function() ipc.poll({ [r] = "x" }) end, "unknown poll event 'x'")
    assert.error_matches(function() ipc.poll({ [r] = 1 }) end, "poll events must be")
    assert.error_matches(function() ipc.poll({ [r] = "" }) end, "poll events must be")
    assert.error_matches(function() ipc.poll({ [r] = "r" }, -1) end, "timeout must not be negative")
    assert.error_matches(function() ipc.poll({ [-3] = "r" }) end, "must not be negative")
    assert.error_matches(function() ipc.poll({ [true] = "r" }) end, "descriptor expected")
    r:close()
    w:close()
  end)
end)

describe("event loop integration", function()
  it("plugs into LuaSocket's socket.select through getfd", function()
    local ok, socket = pcall(require, "socket")
    if not ok then
      pending("lua-socket is not installed: " .. tostring(socket))
      return
    end
    local a, b = ipc.socketpair()
    local readable = socket.select({ a }, nil, 0.01)
    assert.equal(0, #readable)
    b:send("hi")
    readable = socket.select({ a }, nil, 1)
    assert.equal(a, readable[1])
    assert.is_not_nil(readable[a])
    assert.equal("hi", a:recv(10))
    -- and LuaSocket's own sockets can be keys of ipc.poll
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local c = assert(ipc.connect("127.0.0.1:" .. port))
    local ready = ipc.poll({ [srv] = "r" }, 1)
    assert.equal("r", ready[srv])
    local conn = srv:accept()
    conn:close()
    srv:close()
    c:close()
    a:close()
    b:close()
  end)

  it("plugs into a cqueues controller through pollfd and events", function()
    local ok, cqueues = pcall(require, "cqueues")
    if not ok then
      pending("lua-cqueues is not installed: " .. tostring(cqueues))
      return
    end
    local a, b = ipc.socketpair()
    local cq = cqueues.new()
    local got = {}
    cq:wrap(function()
      for _ = 1, 2 do
        cqueues.poll(a) -- waits for "r", the default events()
        got[#got + 1] = a:recv(100)
      end
    end)
    cq:wrap(function()
      b:send("one")
      cqueues.sleep(0.01)
      b:send("two")
    end)
    assert(cq:loop(5))
    assert.same({ "one", "two" }, got)
    -- "w" interest
    assert.equal("w", a:events("w"))
    local wrote
    cq:wrap(function()
      cqueues.poll(a)
      wrote = a:send("w")
    end)
    assert(cq:loop(5))
    assert.equal(1, wrote)
    assert.error_matches(function() a:events("x") end, "events must be")
    cq:close()
    a:close()
    b:close()
  end)
end)
