-- ipc.poll: the shapes it accepts and returns (the bench changed its hot
-- path: keys kept on the stack, one walk over the set, ready ones by index).
local ipc = require "unixipc"

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

describe("poll", function()
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

  it("raises on misuse and on a closed object", function()
    local a, b = assert(ipc.socketpair())
    assert.has_error(function() ipc.poll("x") end)
    assert.has_error(function() ipc.poll({ [a] = "q" }, 0) end)
    assert.has_error(function() ipc.poll({ [a] = 1 }, 0) end)
    assert.has_error(function() ipc.poll({ [a] = "r" }, -1) end)
    assert.has_error(function() ipc.poll({ [{}] = "r" }, 0) end,
      "bad argument #1 (poll key has no getfd or fileno method)")
    assert.has_error(function() ipc.poll({ x = "r" }, 0) end)
    assert.has_error(function() ipc.poll({ [-1] = "r" }, 0) end,
      "bad argument #1 (poll key must be a non-negative integer descriptor)")
    b:close()
    assert.has_error(function() ipc.poll({ [a] = "r", [b] = "r" }, 0) end, "bad argument #1 (attempt to use a closed socket)")
    a:close()
  end)
end)
