-- Smoke tests for the lock examples: each runs as its own lua5.4 process,
-- finishes, exits 0 and says what it should.
local S = require "support"
local run = S.example

local function lines(s)
  local t = {}
  for line in s:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

describe("lock examples", function()
  it("flock.lua: readers share, the writer waits for them", function()
    local out, ok, how, code = run("flock.lua")
    assert.same({ true, "exit", 0 }, { ok, how, code }, out)
    assert.same({
      "parent: shared lock taken on a temporary file",
      "child: shared lock granted as well: readers share",
      "child: exclusive lock refused while the parent reads (flock: Resource temporarily unavailable)",
      "parent: done reading, releasing the shared lock",
      "child: exclusive lock taken once the parent let go",
      "parent: child ended: exit 0",
    }, lines(out))
  end)

  it("flock.lua takes a file name", function()
    local path = os.tmpname()
    local out, ok = run("flock.lua", path)
    assert.is_true(ok, out)
    assert.matches("shared lock taken on " .. path:gsub("%p", "%%%0"), out)
    os.remove(path)
  end)

  it("fcntl_lock.lua: whole-file and range locks, seen through testlock", function()
    local out, ok, how, code = run("fcntl_lock.lua")
    assert.same({ true, "exit", 0 }, { ok, how, code }, out)
    local l = lines(out)
    assert.equal(8, #l, out)
    assert.equal("parent: write lock on the whole file", l[1])
    assert.matches("^child: testlock: write lock on bytes 0 to EOF held by pid %d+$", l[2])
    assert.matches("^child: read lock refused %(fcntl: ", l[3])
    assert.matches("^child: testlock 0%-19: write lock on bytes 0%-9 held by pid %d+$", l[5])
    assert.equal("child: bytes 10-19 are free: locked them too", l[6])
    assert.matches("^child: bytes 5%-14 overlap the parent's lock: refused", l[7])
    assert.equal("parent: done", l[8])
  end)

  for _, kind in ipairs({ "flock", "fcntl", "ofd" }) do
    it("lock_counter.lua " .. kind .. ": no update lost", function()
      local out, ok, how, code = run("lock_counter.lua", kind .. " 4 200")
      assert.same({ true, "exit", 0 }, { ok, how, code }, out)
      assert.matches("^" .. kind .. ": 4 workers x 200 increments: counter = 800 %(expected 800%) in ", out)
    end)
  end

  it("lock_counter.lua rejects an unknown lock kind", function()
    local out, ok, how, code = run("lock_counter.lua", "mutex")
    assert.same({ nil, "exit", 2 }, { ok, how, code })
    assert.matches("usage:", out)
  end)
end)
