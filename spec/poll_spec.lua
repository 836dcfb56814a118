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
    local ev = "bad argument #1 to 'poll' %(poll events must be letters r, w and p %(\"r\", \"w\", \"rw\"%), got "
    assert.error_matches(function() ipc.poll({ [r] = "x" }) end, ev .. "'x'%)")
    assert.error_matches(function() ipc.poll({ [r] = "rx" }) end, ev .. "'rx'%)") -- the whole string
    assert.error_matches(function() ipc.poll({ [r] = 1 }) end, ev .. "number%)")
    assert.error_matches(function() ipc.poll({ [r] = "" }) end, ev .. "''%)")
    assert.error_matches(function() ipc.poll({ [r] = "r" }, -1) end,
      "bad argument #2 to 'poll' %(timeout must not be negative, got %-1%)")
    assert.error_matches(function() ipc.poll({ [-3] = "r" }) end,
      "bad argument #1 to 'poll' %(descriptor must be an integer from 0 to 2147483647, got %-3%)")
    assert.error_matches(function() ipc.poll({ [true] = "r" }) end, "bad argument #1 to 'poll' %(descriptor expected %(unixipc object, io file, integer or object with getfd/fileno%), got boolean%)")
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

-- the bench changed ipc.poll's hot path: keys kept on the stack, one walk
-- over the set, ready ones found by index
local function pairs_n(n)
  local list = {}
  for i = 1, n do
    local a, b = assert(ipc.socketpair())
    list[i] = { a, b }
  end
  return list
end

local function closeall(list)
  for _, p in ipairs(list) do
    p[1]:close()
    p[2]:close()
  end
end

describe("poll walks its set once (bench)", function()
  it("returns {} on timeout and the ready keys with their events", function()
    local a, b = assert(ipc.socketpair())
    local r = ipc.poll({ [a] = "r", [b] = "r" }, 0)
    assert.same({}, r)
    assert(a:send("x"))
    r = ipc.poll({ [a] = "rw", [b] = "r" }, 0)
    assert.equal("w", r[a])
    assert.equal("r", r[b])
    a:close()
    b:close()
  end)

  it("finds every ready one among many idle ones", function()
    local list = pairs_n(300)
    local set = {}
    for _, p in ipairs(list) do set[p[1]], set[p[2]] = "r", "r" end
    for i = 1, 300, 37 do assert(list[i][1]:send("x")) end
    local r = ipc.poll(set, 1)
    local n = 0
    for k, v in pairs(r) do
      n = n + 1
      assert.equal("r", v)
      assert.equal("r", set[k])
    end
    assert.equal(math.ceil(300 / 37), n)
    for i = 1, 300, 37 do assert.equal("r", r[list[i][2]]) end
    closeall(list)
  end)

  it("reports n for every number that is not an open descriptor, in a large set", function()
    local set = {}
    for fd = 900000, 902999 do set[fd] = "r" end
    local a, b = assert(ipc.socketpair())
    assert(a:send("x"))
    set[b] = "r"
    local r = ipc.poll(set, 0)
    local n = 0
    for _ in pairs(r) do n = n + 1 end
    assert.equal(3001, n)
    assert.equal("n", r[900000])
    assert.equal("n", r[902999])
    assert.equal("r", r[b])
    a:close()
    b:close()
  end)

  it("accepts integers, io files and foreign objects as keys", function()
    local a, b = assert(ipc.socketpair())
    assert(a:send("x"))
    local f = assert(io.open("/dev/null"))
    local foreign = { getfd = function(self) return self.sock:fileno() end, sock = b }
    local r = ipc.poll({ [a:fileno()] = "w", [f] = "r", [foreign] = "r" }, 1)
    assert.equal("w", r[a:fileno()])
    assert.equal("r", r[f])
    assert.equal("r", r[foreign])
    f:close()
    a:close()
    b:close()
  end)

  it("mixes event strings in one set", function()
    local a, b = assert(ipc.socketpair())
    local c, d = assert(ipc.socketpair())
    local r = ipc.poll({ [a] = "r", [b] = "w", [c] = "rw", [d] = "r" }, 0)
    assert.is_nil(r[a])
    assert.equal("w", r[b])
    assert.equal("w", r[c])
    assert.is_nil(r[d])
    for _, s in ipairs { a, b, c, d } do s:close() end
  end)

  it("names the set, argument #1, for a closed key", function()
    local a, b = assert(ipc.socketpair())
    b:close()
    assert.error_matches(function() ipc.poll({ [a] = "r", [b] = "r" }, 0) end,
      "bad argument #1 to 'poll' %(attempt to use a closed socket%)")
    a:close()
  end)
end)

-- ipc.pollset(): a registered set, the pollfd array kept in C across calls
describe("pollset", function()
  it("reports ready keys, {} on timeout, and counts its keys", function()
    local a, b = assert(ipc.socketpair())
    local r, w = ipc.pipe()
    local ps = ipc.pollset()
    assert.equal(0, #ps)
    assert.equal("pollset (0 descriptors)", tostring(ps))
    assert.is_true(ps:add(a, "r"))
    assert.is_true(ps:add(r, "r"))
    assert.is_true(ps:add(w, "w"))
    assert.equal(3, #ps)
    assert.equal(3, ps:count())
    assert.equal("pollset (3 descriptors)", tostring(ps))
    assert.same({ [w] = "w" }, ps:wait(0))
    assert(b:send("x"))
    assert(w:write("y"))
    assert.same({ [a] = "r", [r] = "r", [w] = "w" }, ps:wait(1))
    assert.same({ [a] = "r", [r] = "r", [w] = "w" }, ps:wait(math.huge)) -- waits for ever
    assert.equal("r", ipc.poll({ [a] = "r" }, math.huge)[a])
    assert.is_true(ps:remove(w))
    assert.same({ [a] = "r", [r] = "r" }, ps:wait(0))
    assert.equal("x", a:recv(1))
    assert.equal("y", r:read(1))
    assert.same({}, ps:wait(0.01))
    assert.is_true(ps:close())
    for _, o in ipairs { a, b, r, w } do o:close() end
  end)

  it("changes a key's events when it is added again", function()
    local a, b = assert(ipc.socketpair())
    local ps = ipc.pollset()
    ps:add(a, "r")
    assert.same({}, ps:wait(0))
    ps:add(a, "rw")
    assert.equal(1, #ps)
    assert.same({ [a] = "w" }, ps:wait(0))
    ps:add(a, "w")
    assert(b:send("x"))
    assert.same({ [a] = "w" }, ps:wait(0))
    ps:add(a, "r")
    assert.same({ [a] = "r" }, ps:wait(0))
    ps:close()
    a:close()
    b:close()
  end)

  it("reports hang-up and urgent data", function()
    local r, w = ipc.pipe()
    local ps = ipc.pollset()
    ps:add(r, "r")
    w:close()
    assert.equal("h", ps:wait(0)[r])
    r:close()
    local srv = assert(ipc.listen("127.0.0.1:0"))
    local c = assert(ipc.connect(srv:getsockname()))
    local conn = assert(srv:accept())
    ps:close()
    ps = ipc.pollset()
    ps:add(conn, "p")
    assert.same({}, ps:wait(0))
    c:send("!", "oob")
    assert.matches("p", ps:wait(1)[conn])
    assert.equal("!", conn:recv(1, "oob"))
    ps:close()
    c:close()
    conn:close()
    srv:close()
  end)

  it("waits without a timeout until a child writes", function()
    local r, w = ipc.pipe()
    local pid = S.child(function()
      r:close()
      ipc.sleep(0.02)
      w:write("late")
    end)
    w:close()
    local ps = ipc.pollset()
    ps:add(r, "r")
    assert.matches("^r", ps:wait()[r])
    assert.equal("late", r:read(10))
    ps:close()
    r:close()
    assert.equal(0, S.wait(pid))
  end)

  it("keeps the right keys when removal moves the last entry into the hole", function()
    local list = pairs_n(40)
    local ps = ipc.pollset()
    for _, p in ipairs(list) do ps:add(p[1], "r") end
    assert.equal(40, #ps)
    for i = 1, 40, 3 do assert.is_true(ps:remove(list[i][1])) end
    assert.is_false(ps:remove(list[1][1])) -- not registered any more
    assert.is_false(ps:remove(12345))
    assert.equal(40 - 14, #ps)
    for _, p in ipairs(list) do assert(p[2]:send("x")) end
    local r = ps:wait(0)
    local n = 0
    for k, v in pairs(r) do
      n = n + 1
      assert.equal("r", v)
    end
    assert.equal(26, n)
    for i, p in ipairs(list) do
      if i % 3 == 1 then assert.is_nil(r[p[1]]) else assert.equal("r", r[p[1]]) end
    end
    -- remove everything, then add again
    for _, p in ipairs(list) do ps:remove(p[1]) end
    assert.equal(0, #ps)
    assert.same({}, ps:wait(0))
    ps:add(list[40][1], "r")
    assert.same({ [list[40][1]] = "r" }, ps:wait(0))
    ps:close()
    closeall(list)
  end)

  it("has no FD_SETSIZE limit: descriptors above 1024 work", function()
    local list, ok = {}, true
    for i = 1, 600 do
      local r, w = ipc.pipe()
      if not r then
        ok = false
        break
      end
      list[i] = { r, w }
    end
    if not ok then
      closeall(list)
      pending("the descriptor limit is below 1200 here")
      return
    end
    local ps = ipc.pollset()
    for _, p in ipairs(list) do ps:add(p[1], "r") end
    local last = list[#list]
    assert.is_true(last[1]:fileno() > 1024)
    assert.same({}, ps:wait(0))
    last[2]:write("!")
    assert.same({ [last[1]] = "r" }, ps:wait(1))
    ps:close()
    closeall(list)
  end)

  it("accepts integers, io files and foreign objects as keys", function()
    local a, b = assert(ipc.socketpair())
    assert(a:send("x"))
    local f = assert(io.open("/dev/null"))
    local foreign = { getfd = function(self) return self.sock:fileno() end, sock = b }
    local ps = ipc.pollset()
    ps:add(a:fileno(), "w")
    ps:add(f, "r")
    ps:add(foreign, "r")
    assert.same({ [a:fileno()] = "w", [f] = "r", [foreign] = "r" }, ps:wait(1))
    assert.is_true(ps:remove(a:fileno()))
    assert.same({ [f] = "r", [foreign] = "r" }, ps:wait(1))
    ps:close()
    f:close()
    a:close()
    b:close()
  end)

  it("reports n for a closed object until it is removed, even when its number is reused", function()
    local a, b = assert(ipc.socketpair())
    local c, d = assert(ipc.socketpair())
    local ps = ipc.pollset()
    ps:add(a, "r")
    ps:add(c, "r")
    local fd = a:fileno()
    a:close()
    local r, w = ipc.pipe() -- takes the lowest free number: a's
    assert.equal(fd, r:fileno())
    assert(w:write("!")) -- r is ready, but it is not the key that was added
    assert.same({ [a] = "n" }, ps:wait(1))
    assert.same({ [a] = "n" }, ps:wait()) -- no wait at all while a key is dead
    assert(d:send("x"))
    assert.same({ [a] = "n", [c] = "r" }, ps:wait(0))
    assert.error_matches(function() ps:add(a, "r") end, "attempt to use a closed socket")
    assert.is_true(ps:remove(a))
    assert.same({ [c] = "r" }, ps:wait(0))
    for _, o in ipairs { b, c, d, r, w } do o:close() end
    ps:close()
  end)

  it("never reports a reused number's readiness under a closed key", function()
    local a, b = assert(ipc.socketpair())
    local ps = ipc.pollset()
    ps:add(a, "r")
    local fd = a:fileno()
    a:close()
    local r, w = ipc.pipe()
    assert.equal(fd, r:fileno())
    assert.same({}, ps:wait(0)) -- the number is taken by an idle pipe: nothing to say yet
    assert(w:write("!"))
    assert.same({ [a] = "n" }, ps:wait(0))
    assert.equal("!", r:read(1))
    assert.same({ [a] = "n" }, ps:wait(0)) -- and from then on, until removed
    ps:add(r, "r")
    assert.same({ [a] = "n" }, ps:wait(0))
    assert(w:write("?"))
    assert.same({ [a] = "n", [r] = "r" }, ps:wait(0))
    ps:remove(a)
    assert.same({ [r] = "r" }, ps:wait(0))
    ps:close()
    for _, o in ipairs { b, r, w } do o:close() end
  end)

  it("reports n for a closed io file and for a number that is not open", function()
    local f = assert(io.open("/dev/null"))
    local ps = ipc.pollset()
    ps:add(f, "r")
    ps:add(900001, "r")
    f:close()
    assert.same({ [f] = "n", [900001] = "n" }, ps:wait(0))
    ps:close()
  end)

  it("closes once: close(), <close> and the collector; a closed set raises", function()
    local a, b = assert(ipc.socketpair())
    do
      local ps <close> = ipc.pollset()
      ps:add(a, "r")
    end
    local ps = ipc.pollset()
    ps:add(a, "r")
    assert.is_true(ps:close())
    assert.is_true(ps:close())
    assert.equal("pollset (closed)", tostring(ps))
    assert.error_matches(function() ps:wait(0) end, "attempt to use a closed pollset")
    assert.error_matches(function() ps:add(a, "r") end, "attempt to use a closed pollset")
    assert.error_matches(function() ps:remove(a) end, "attempt to use a closed pollset")
    assert.error_matches(function() return #ps end, "attempt to use a closed pollset")
    a:close()
    b:close()
  end)

  it("does not keep its keys alive once removed or closed", function()
    local weak = setmetatable({}, { __mode = "k" })
    local ps1, ps2 = ipc.pollset(), ipc.pollset()
    do
      local a, b = assert(ipc.socketpair())
      local k1, k2 = { getfd = function() return 0 end }, { getfd = function() return 0 end }
      ps1:add(k1, "r")
      ps1:add(a, "r")
      ps2:add(k2, "r")
      ps1:remove(k1)
      weak[k1], weak[k2], weak[a] = true, true, true
      ps1:remove(a)
      a:close()
      b:close()
    end
    ps2:close()
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
    ps1:close()
    -- and a set dropped without close() frees what it holds
    do
      local ps = ipc.pollset()
      for fd = 0, 100 do ps:add(fd, "r") end
    end
    collectgarbage()
  end)

  it("stays sound when finalizers add and remove keys in the middle of its calls", function()
    -- a collector this eager runs finalizers inside wait()'s allocations
    collectgarbage("incremental", 10, 1000, 0)
    finally(function() collectgarbage("incremental", 200, 100, 13) end) -- Lua 5.4's defaults
    local list = pairs_n(100)
    local fds = {}
    for i, p in ipairs(list) do
      assert(p[2]:send("x")) -- every p[1] is ready
      fds[i] = p[1]:fileno()
    end
    local ps = ipc.pollset()
    for i = 1, 60 do ps:add(fds[i], "r") end
    local n, inside, during = 0, false, 0
    local mt = { __gc = function()
      n = n + 1
      if inside then during = during + 1 end
      local fd = fds[n % 100 + 1]
      if n % 2 == 0 then ps:add(fd, "r") else ps:remove(fd) end
    end }
    -- rounds until finalizers have run inside wait() a few times (the
    -- collector's timing decides how many rounds that takes)
    for _ = 1, 500 do
      if during >= 5 then break end
      for _ = 1, 20 do setmetatable({}, mt) end
      inside = true
      local r = ps:wait(0)
      inside = false
      for k, v in pairs(r) do
        assert.equal("integer", math.type(k))
        assert.truthy(v == "r" or v == "rw", v)
      end
      ps:add(fds[n % 100 + 1], "rw")
      ps:remove(fds[(n + 7) % 100 + 1])
    end
    assert.is_true(during > 0, "no finalizer ran inside wait()")
    collectgarbage()
    -- what the set holds is exactly what it reports
    local r = ps:wait(0)
    local count = 0
    for _ in pairs(r) do count = count + 1 end
    assert.equal(#ps, count)
    for _, fd in ipairs(fds) do ps:remove(fd) end
    assert.equal(0, #ps)
    assert.same({}, ps:wait(0))
    ps:close()
    closeall(list)
  end)

  it("rejects bad arguments", function()
    local r, w = ipc.pipe()
    local ps = ipc.pollset()
    assert.error_matches(function() ps:add() end, "bad argument #1 to 'add'")
    local ev = "bad argument #2 to 'add' %(poll events must be letters r, w and p %(\"r\", \"w\", \"rw\"%), got "
    local fd = "bad argument #1 to 'add' %(descriptor expected %(unixipc object, io file, integer or object with getfd/fileno%), got "
    local range = "bad argument #1 to 'add' %(descriptor must be an integer from 0 to 2147483647, got "
    assert.error_matches(function() ps:add(r) end, ev .. "nil%)")
    assert.error_matches(function() ps:add(r, "") end, ev .. "''%)")
    assert.error_matches(function() ps:add(r, "x") end, ev .. "'x'%)")
    assert.error_matches(function() ps:add(r, "read") end, ev .. "'read'%)")
    assert.error_matches(function() ps:add(r, 1) end, ev .. "number%)")
    assert.error_matches(function() ps:add(-3, "r") end, range .. "%-3%)")
    assert.error_matches(function() ps:add(1.5, "r") end, range .. "1%.5%)")
    assert.error_matches(function() ps:add(true, "r") end, fd .. "boolean%)")
    assert.error_matches(function() ps:add(nil, "r") end, fd .. "nil%)")
    assert.error_matches(function() ps:add({}, "r") end, fd .. "a table with neither%)")
    assert.error_matches(function() ps:wait(-1) end, "bad argument #1 to 'wait' %(timeout must not be negative, got %-1%)")
    assert.error_matches(function() ps:wait("soon") end,
      "bad argument #1 to 'wait' %(timeout must be a number of seconds or nil, got string%)")
    assert.error_matches(function() ps:remove() end, "bad argument #1 to 'remove'")
    assert.error_matches(function() ps.wait({}) end, "unixipc pollset expected")
    assert.error_matches(function() ps.add(r, r, "r") end, "unixipc pollset expected")
    assert.error_matches(function() ps.close(r) end, "unixipc pollset expected")
    assert.equal(0, #ps) -- nothing half-added
    assert.same({}, ps:wait(0))
    ps:close()
    r:close()
    w:close()
  end)
end)

describe("poll keys (review fix)", function()
  it("refuse a foreign getfd that answers something other than a descriptor", function()
    local bad = setmetatable({}, { __index = { getfd = function() return nil end } })
    assert.error_matches(function() ipc.poll({ [bad] = "r" }, 0) end, "gave nil, not a descriptor")
    local odd = { getfd = function() return "0" end }
    assert.error_matches(function() ipc.poll({ [odd] = "r" }, 0) end, "gave string, not a descriptor")
  end)
end)
