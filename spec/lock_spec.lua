-- File locks against the real kernel: flock(2), fcntl record locks and
-- open-file-description (OFD) locks, contended by real processes.
local ipc = require "unixipc"
local E = ipc.errno
local S = require "support"

-- a temporary file holding content; the caller removes it
local function tmpfile(content)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(content or "")
  f:close()
  return path
end

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function sleep(s) ipc.poll({}, s) end

-- run fn(f) in a child with its own open of path: its exit code
local function probe(path, fn)
  return S.run(function()
    return fn(assert(ipc.open(path, "r+")))
  end)
end

-- can another process take this lock right now? 0 yes, 1 busy, 2 other error
local function result(l, _, err)
  if l then return 0 end
  return (err == E.EAGAIN or err == E.EWOULDBLOCK or err == E.EACCES) and 1 or 2
end

local function tryflock(path, mode)
  return probe(path, function(f)
    return result(ipc.flock(f, mode, { wait = false }))
  end)
end

local function trylock(path, opts)
  return probe(path, function(f)
    local o = { wait = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    return result(ipc.lock(f, o))
  end)
end

-- the three kinds, each with an exclusive and a shared way to take a lock
local kinds = {
  { name = "flock",
    ex = function(f, o) return ipc.flock(f, "ex", o) end,
    sh = function(f, o) return ipc.flock(f, "sh", o) end },
  { name = "fcntl",
    ex = function(f, o) o = o or {}; o.type = "write"; return ipc.lock(f, o) end,
    sh = function(f, o) o = o or {}; o.type = "read"; return ipc.lock(f, o) end },
  { name = "OFD",
    ex = function(f, o) o = o or {}; o.type = "write"; o.ofd = true; return ipc.lock(f, o) end,
    sh = function(f, o) o = o or {}; o.type = "read"; o.ofd = true; return ipc.lock(f, o) end },
}

-- a child that takes kind's exclusive lock on its own open, says "L" on
-- ready, then holds it until hold is closed (or for a fixed time)
local function holder(kind, path, forsecs)
  local ready_r, ready_w = ipc.pipe()
  local hold_r, hold_w = ipc.pipe()
  local pid = S.child(function()
    ready_r:close()
    hold_w:close()
    local f = assert(ipc.open(path, "r+"))
    local l = assert(kind.ex(f))
    ready_w:write("L")
    if forsecs then sleep(forsecs) else hold_r:read(1) end
    assert(l:release())
    return 0
  end)
  ready_w:close()
  hold_r:close()
  assert.equal("L", ready_r:read(1))
  ready_r:close()
  if forsecs then
    hold_w:close()
    return pid
  end
  return pid, hold_w
end

local function sigstate()
  local s = slurp("/proc/self/status")
  return s:match("SigBlk:%s*(%x+)"), s:match("SigIgn:%s*(%x+)"), s:match("SigCgt:%s*(%x+)")
end

describe("locks", function()
  local path
  before_each(function() path = tmpfile("0") end)
  after_each(function() os.remove(path) end)

  describe("keep a counter exact", function()
    for _, kind in ipairs(kinds) do
      it("under " .. kind.name .. " locks: 8 processes x 300 read-increment-write cycles", function()
        local go_r, go_w = ipc.pipe()
        local pids = {}
        for i = 1, 8 do
          pids[i] = S.child(function()
            go_w:close()
            local f = assert(ipc.open(path, "r+"))
            go_r:read(1) -- everyone starts together, at eof
            for _ = 1, 300 do
              local l = assert(kind.ex(f))
              assert(f:seek("set", 0))
              local n = assert(tonumber(f:read(32)))
              assert(f:seek("set", 0))
              assert(f:write(tostring(n + 1)))
              assert(l:release())
            end
            return 0
          end)
        end
        go_r:close()
        go_w:close()
        for i = 1, 8 do assert.equal(0, S.wait(pids[i])) end
        assert.equal("2400", slurp(path))
      end)
    end
  end)

  describe("shared and exclusive", function()
    for _, kind in ipairs(kinds) do
      it(kind.name .. ": shared locks coexist and exclude an exclusive one", function()
        local f = assert(ipc.open(path, "r+"))
        local l = assert(kind.sh(f))
        assert.equal(0, probe(path, function(g) return result(kind.sh(g, { wait = false })) end))
        local code = probe(path, function(g)
          local other, msg, err = kind.ex(g, { wait = false })
          if other then return 0 end
          -- the kernel's word: EWOULDBLOCK for flock, EAGAIN (or EACCES) for fcntl
          if kind.name == "flock" then return (err == E.EWOULDBLOCK and msg:match("^flock: ")) and 1 or 2 end
          return ((err == E.EAGAIN or err == E.EACCES) and msg:match("^fcntl: ")) and 1 or 2
        end)
        assert.equal(1, code)
        assert.is_true(l:release())
        assert.equal(0, probe(path, function(g) return result(kind.ex(g, { wait = false })) end))
        f:close()
      end)
    end
  end)

  describe("timed waits", function()
    for _, kind in ipairs(kinds) do
      it(kind.name .. ": succeed when the holder lets go", function()
        local pid = holder(kind, path, 0.15)
        local f = assert(ipc.open(path, "r+"))
        local t0 = ipc.monotime()
        local l, msg = kind.ex(f, { wait = 5 })
        assert.is_truthy(l, msg)
        assert.is_true(ipc.monotime() - t0 > 0.05) -- it really waited
        assert.is_true(l:release())
        assert.equal(0, S.wait(pid))
        f:close()
      end)

      it(kind.name .. ": time out when it does not", function()
        local pid, hold = holder(kind, path)
        local f = assert(ipc.open(path, "r+"))
        local t0 = ipc.monotime()
        local l, msg, err = kind.ex(f, { wait = 0.1 })
        assert.is_nil(l)
        assert.equal("timeout", msg)
        assert.equal(E.ETIMEDOUT, err)
        assert.is_true(ipc.monotime() - t0 >= 0.1)
        -- wait = 0 is one attempt, then a timeout
        l, msg, err = kind.ex(f, { wait = 0 })
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { l, msg, err })
        -- wait = false is one attempt and the kernel's errno
        l, msg, err = kind.ex(f, { wait = false })
        assert.is_nil(l)
        assert.is_true(err == E.EAGAIN or err == E.EACCES)
        hold:close()
        assert.equal(0, S.wait(pid))
        f:close()
      end)
    end

    it("touch no signal mask or disposition (no alarm, no handler)", function()
      local pid, hold = holder(kinds[1], path)
      local f = assert(ipc.open(path, "r+"))
      local b1, i1, c1 = sigstate()
      assert.is_nil((ipc.flock(f, "ex", { wait = 0.05 })))
      local b2, i2, c2 = sigstate()
      assert.same({ b1, i1, c1 }, { b2, i2, c2 })
      hold:close()
      assert.equal(0, S.wait(pid))
      f:close()
    end)

    for _, wait in ipairs({ 5, true }) do
      it("survive the waiter being stopped and continued (wait = " .. tostring(wait) .. ")", function()
        local f = assert(ipc.open(path, "r+"))
        local l = assert(ipc.flock(f, "ex"))
        local r, w = ipc.pipe()
        local pid = S.child(function()
          r:close()
          local g = assert(ipc.open(path, "r+"))
          w:write("W")
          local got, msg = ipc.flock(g, "ex", { wait = wait })
          if not got then io.stderr:write(msg, "\n") return 1 end
          return 0
        end)
        w:close()
        assert.equal("W", r:read(1))
        r:close()
        sleep(0.03)
        assert(ipc.kill(pid, "STOP"))
        sleep(0.03)
        assert(ipc.kill(pid, "CONT"))
        sleep(0.03)
        assert.is_true(l:release())
        assert.equal(0, S.wait(pid))
        f:close()
      end)
    end
  end)

  it("flock and fcntl locks do not see each other (Linux)", function()
    local f = assert(ipc.open(path, "r+"))
    local a = assert(ipc.flock(f, "ex"))
    assert.equal(0, trylock(path))
    assert.equal(0, trylock(path, { ofd = true }))
    assert.is_true(a:release())
    f:close()
  end)

  describe("a task that waits for a record lock", function()
    -- the range relative to the position or the size is fixed when the
    -- call is made, as the kernel fixes it for a blocking F_SETLKW: the
    -- retries after each hand-off do not resolve it again
    local moves = {
      cur = function(f) f:seek("set", 100) end,            -- the position moves
      ["end"] = function(f) f:seek("end"); f:write(("y"):rep(100)) end, -- the file grows
    }
    for _, whence in ipairs({ "cur", "end" }) do
      for _, ofd in ipairs({ false, true }) do
        it(("whence = %q%s keeps the range of the call while another task %s"):format(
          whence, ofd and " (OFD)" or "", whence == "cur" and "seeks" or "appends"), function()
          local loop = require "unixipc.loop"
          local w = assert(io.open(path, "w"))
          w:write(("x"):rep(20))
          w:close()
          local f = assert(ipc.open(path, "r+"))
          local l, msg
          finally(function()
            if l then l:release() end
            f:close()
          end)
          f:seek("set", 10)
          -- another process holds the whole file until hold is closed
          local pid, hold = holder(kinds[ofd and 3 or 2], path)
          loop.spawn(function()
            -- bytes 10 to 19 either way: position 10 + 0, or size 20 - 10
            l, msg = ipc.lock(f, { whence = whence, start = whence == "cur" and 0 or -10, len = 10, ofd = ofd })
          end)
          loop.spawn(function()
            loop.sleep(0.05) -- the first task is waiting by now
            moves[whence](f)
            hold:close()
          end)
          assert(loop.run())
          assert.equal(0, S.wait(pid))
          assert.is_truthy(l, msg)
          -- seen from another process: 10-19 is held, 100-109 is free
          assert.equal(1, trylock(path, { start = 10, len = 10 }))
          assert.equal(0, trylock(path, { start = 100, len = 10 }))
          assert.is_true(l:release())
        end)
      end
    end
  end)

  describe("flock(1) from util-linux", function()
    local function have_flock()
      local p = io.popen("command -v flock 2>/dev/null")
      local where = p:read("l")
      p:close()
      return where
    end

    it("sees our locks, and we see its", function()
      if not have_flock() then
        pending("no flock(1) command: util-linux is not installed")
        return
      end
      local f = assert(ipc.open(path, "r"))
      local l = assert(ipc.flock(f, "ex"))
      local ok, how, code = os.execute(("flock -n %q true"):format(path))
      assert.same({ nil, "exit", 1 }, { ok, how, code })
      assert.is_true(l:release())
      l = assert(ipc.flock(f, "sh"))
      assert.is_true((os.execute(("flock -s -n %q true"):format(path))))
      assert.is_nil((os.execute(("flock -x -n %q true"):format(path))))
      assert.is_true(l:release())
      -- the other way round: flock(1) holds it while its command runs
      local p = io.popen(("flock -x %q sh -c 'echo locked; sleep 0.3'"):format(path))
      assert.equal("locked", p:read("l"))
      local busy, _, err = ipc.flock(f, "sh", { wait = false })
      assert.is_nil(busy)
      assert.equal(E.EWOULDBLOCK, err)
      l = assert(ipc.flock(f, "sh", { wait = 5 })) -- granted when flock(1) exits
      assert.is_true(p:close())
      assert.is_true(l:release())
      f:close()
    end)
  end)

  describe("testlock", function()
    it("reports another process's lock: type, pid and range", function()
      local f = assert(ipc.open(path, "r+"))
      assert(f:write(("x"):rep(100)))
      local ready_r, ready_w = ipc.pipe()
      local hold_r, hold_w = ipc.pipe()
      local pid = S.child(function()
        ready_r:close()
        hold_w:close()
        local g = assert(ipc.open(path, "r+"))
        assert(ipc.lock(g, { type = "write", start = 10, len = 5 }))
        ready_w:write("L")
        hold_r:read(1)
        return 0
      end)
      ready_w:close()
      hold_r:close()
      assert.equal("L", ready_r:read(1))
      assert.same({ type = "write", pid = pid, start = 10, len = 5 }, ipc.testlock(f))
      assert.same({ type = "write", pid = pid, start = 10, len = 5 },
        ipc.testlock(f, { type = "read", start = 14, len = 1 }))
      assert.is_nil(ipc.testlock(f, { start = 0, len = 10 }))
      assert.is_nil(ipc.testlock(f, { start = 15 }))
      -- whence "end": 90 before the end of a 100-byte file is offset 10
      assert.is_table(ipc.testlock(f, { whence = "end", start = -90, len = 1 }))
      -- a negative len reaches back: [5, 10) is free, [6, 11) is not
      assert.is_nil(ipc.testlock(f, { start = 10, len = -5 }))
      assert.is_table(ipc.testlock(f, { start = 11, len = -5 }))
      -- F_OFD_GETLK sees the same POSIX lock
      assert.same({ type = "write", pid = pid, start = 10, len = 5 }, ipc.testlock(f, { ofd = true }))
      hold_w:close()
      assert.equal(0, S.wait(pid))
      assert.is_nil(ipc.testlock(f))
      ready_r:close()
      f:close()
    end)

    it("reports an OFD lock with pid -1, and never the asker's own locks", function()
      local f = assert(ipc.open(path, "r+"))
      local mine = assert(ipc.lock(f, { type = "write" }))
      assert.is_nil(ipc.testlock(f)) -- our own POSIX lock never conflicts with us...
      -- ...but F_OFD_GETLK asks for the open file description, a different owner
      assert.same({ type = "write", pid = ipc.getpid(), start = 0, len = 0 }, ipc.testlock(f, { ofd = true }))
      local g = assert(ipc.open(path, "r+"))
      -- an OFD lock is owned by the open file description, not by a process
      assert.is_true(mine:release())
      local ofd = assert(ipc.lock(f, { type = "read", start = 20, len = 10, ofd = true }))
      assert.same({ type = "read", pid = -1, start = 20, len = 10 },
        ipc.testlock(g, { type = "write", ofd = true }))
      assert.same({ type = "read", pid = -1, start = 20, len = 10 }, ipc.testlock(g, { type = "write" }))
      assert.is_nil(ipc.testlock(g, { type = "read", ofd = true }))
      assert.is_nil(ipc.testlock(f, { type = "write", ofd = true })) -- f's own OFD lock
      assert.is_true(ofd:release())
      f:close()
      g:close()
    end)
  end)

  describe("POSIX record locks (the surprises)", function()
    it("are released when the process closes ANY descriptor of the file", function()
      local f = assert(ipc.open(path, "r+"))
      local l = assert(ipc.lock(f, { type = "write" }))
      assert.equal(1, trylock(path))
      -- some unrelated code opens and closes the same file...
      local other = assert(io.open(path))
      other:close()
      -- ...and our lock is gone, though f is still open
      assert.equal(0, trylock(path))
      assert.is_true(l:release())
      f:close()
    end)

    it("are not inherited by a fork child", function()
      local f = assert(ipc.open(path, "r+"))
      local l = assert(ipc.lock(f, { type = "write" }))
      local me = ipc.getpid()
      local code = S.run(function()
        local t = ipc.testlock(f) -- the parent's lock conflicts with the child
        if not (t and t.pid == me) then return 1 end
        local mine, _, err = ipc.lock(f, { wait = false })
        if mine or (err ~= E.EAGAIN and err ~= E.EACCES) then return 2 end
        -- the inherited object's release() cannot drop the parent's lock
        if l:release() ~= true then return 3 end
        return 0
      end)
      assert.equal(0, code)
      assert.equal(1, trylock(path)) -- still ours
      assert.is_true(l:release())
      f:close()
    end)

    it("merge per process: two opens in one process never conflict", function()
      local f = assert(ipc.open(path, "r+"))
      local g = assert(ipc.open(path, "r+"))
      local a = assert(ipc.lock(f, { type = "write", wait = false }))
      local b = assert(ipc.lock(g, { type = "write", wait = false }))
      -- and releasing either object unlocks the range for the whole process
      assert.is_true(a:release())
      assert.equal(0, trylock(path))
      assert.is_true(b:release())
      f:close()
      g:close()
    end)

    it("EDEADLK: the kernel refuses to complete a deadlock cycle", function()
      local f = assert(ipc.open(path, "r+"))
      local mine = assert(ipc.lock(f, { start = 0, len = 1 }))
      local ready_r, ready_w = ipc.pipe()
      local pid = S.child(function()
        ready_r:close()
        local g = assert(ipc.open(path, "r+"))
        assert(ipc.lock(g, { start = 1, len = 1 }))
        ready_w:write("L")
        local l, _, err = ipc.lock(g, { start = 0, len = 1 })
        if l then return 0 end
        return err == E.EDEADLK and 3 or 4
      end)
      ready_w:close()
      assert.equal("L", ready_r:read(1))
      ready_r:close()
      local l, msg, err = ipc.lock(f, { start = 1, len = 1 })
      local deadlocks = 0
      if not l then
        assert.equal(E.EDEADLK, err)
        assert.matches("^fcntl: ", msg)
        deadlocks = deadlocks + 1
        assert.is_true(mine:release()) -- let the child through
      end
      local code = S.wait(pid)
      if code == 3 then deadlocks = deadlocks + 1 else assert.equal(0, code) end
      assert.equal(1, deadlocks)
      if l then assert.is_true(l:release()) end
      mine:release()
      f:close()
    end)
  end)

  describe("flock and OFD locks belong to the open file description", function()
    local ofdkinds = { kinds[1], kinds[3] }
    for _, kind in ipairs(ofdkinds) do
      it(kind.name .. ": survive closing another descriptor of the file", function()
        local f = assert(ipc.open(path, "r+"))
        local l = assert(kind.ex(f))
        local other = assert(io.open(path))
        other:close()
        assert.equal(1, probe(path, function(g) return result(kind.ex(g, { wait = false })) end))
        assert.is_true(l:release())
        f:close()
      end)

      it(kind.name .. ": two separate opens conflict, even in one process; a dup shares", function()
        local f = assert(ipc.open(path, "r+"))
        local g = assert(ipc.open(path, "r+"))
        local l = assert(kind.ex(f))
        local busy, _, err = kind.ex(g, { wait = false })
        assert.is_nil(busy)
        assert.is_true(err == E.EAGAIN or err == E.EWOULDBLOCK)
        local d = assert(f:dup()) -- same open file description
        local again = assert(kind.ex(d, { wait = false }))
        assert.is_true(again:release()) -- ...and releasing through the dup drops it for f too
        assert.is_truthy(kind.ex(g, { wait = false }))
        l:release()
        d:close()
        f:close()
        g:close() -- closing the last descriptor drops g's lock
      end)

      it(kind.name .. ": are shared with a fork child, which can release the parent's lock", function()
        local f = assert(ipc.open(path, "r+"))
        local l = assert(kind.ex(f))
        -- the child's copy of the lock object, collected there, leaves the lock alone
        assert.equal(0, S.run(function()
          l = nil
          collectgarbage()
          collectgarbage()
          return 0
        end))
        assert.equal(1, probe(path, function(g) return result(kind.ex(g, { wait = false })) end))
        -- the child holds the same lock: asking again succeeds, and releasing drops it for both
        assert.equal(0, S.run(function()
          local same = kind.ex(f, { wait = false })
          if not same then return 1 end
          return same:release() and 0 or 2
        end))
        assert.equal(0, probe(path, function(g) return result(kind.ex(g, { wait = false })) end))
        assert.is_true(l:release())
        f:close()
      end)
    end

    it("flock: converting sh -> ex is not atomic (a failed conversion drops the lock)", function()
      local f = assert(ipc.open(path, "r+"))
      local g = assert(ipc.open(path, "r+"))
      local h = assert(ipc.open(path, "r+"))
      local a = assert(ipc.flock(f, "sh"))
      local b = assert(ipc.flock(g, "sh"))
      -- f asks to convert to ex while g shares: refused...
      local up, _, err = ipc.flock(f, "ex", { wait = false })
      assert.is_nil(up)
      assert.equal(E.EWOULDBLOCK, err)
      -- ...and f's shared lock is gone too: once g lets go, h gets ex at once
      assert.is_nil((ipc.flock(h, "ex", { wait = false })))
      assert.is_true(b:release())
      local c = assert(ipc.flock(h, "ex", { wait = false }))
      assert.is_true(c:release())
      a:release()
      f:close()
      g:close()
      h:close()
    end)

    it("OFD: a failed read -> write upgrade keeps the read lock (fcntl converts atomically)", function()
      local f = assert(ipc.open(path, "r+"))
      local g = assert(ipc.open(path, "r+"))
      local h = assert(ipc.open(path, "r+"))
      local a = assert(ipc.lock(f, { type = "read", ofd = true }))
      local b = assert(ipc.lock(g, { type = "read", ofd = true }))
      assert.is_nil((ipc.lock(f, { type = "write", ofd = true, wait = false })))
      assert.is_true(b:release())
      assert.is_nil((ipc.lock(h, { type = "write", ofd = true, wait = false }))) -- f still reads
      assert.is_true(a:release())
      local c = assert(ipc.lock(h, { type = "write", ofd = true, wait = false }))
      assert.is_true(c:release())
      f:close()
      g:close()
      h:close()
    end)
  end)

  describe("lock objects", function()
    it("release() is idempotent; tostring shows kind, range and fd or released", function()
      local f = assert(ipc.open(path, "r+"))
      local fd = f:fileno()
      local l = assert(ipc.flock(f, "ex"))
      assert.equal(("lock (flock ex, fd %d)"):format(fd), tostring(l))
      assert.is_true(l:release())
      assert.is_true(l:release())
      assert.equal("lock (released)", tostring(l))
      l = assert(ipc.flock(f, "sh"))
      assert.equal(("lock (flock sh, fd %d)"):format(fd), tostring(l))
      l:release()
      l = assert(ipc.lock(f, { type = "read", start = 5, len = 10 }))
      assert.equal(("lock (fcntl read 5-14, fd %d)"):format(fd), tostring(l))
      l:release()
      l = assert(ipc.lock(f, { ofd = true }))
      assert.equal(("lock (ofd write 0-EOF, fd %d)"):format(fd), tostring(l))
      l:release()
      f:close()
    end)

    it("resolve whence and a negative len when taken: release unlocks exactly that range", function()
      local f = assert(ipc.open(path, "r+"))
      assert(f:write(("y"):rep(50)))
      assert(f:seek("set", 20))
      local l = assert(ipc.lock(f, { whence = "cur", start = 5, len = 3, ofd = true }))
      assert.matches("25%-27", tostring(l))
      local e = assert(ipc.lock(f, { whence = "end", start = 0, len = -10, ofd = true }))
      assert.matches("40%-49", tostring(e))
      assert(f:seek("set", 0)) -- moving the offset changes nothing
      assert.is_true(l:release())
      local g = assert(ipc.open(path))
      assert.is_nil(ipc.testlock(g, { ofd = true, start = 25, len = 3 }))
      assert.is_table(ipc.testlock(g, { ofd = true, start = 45, len = 1 }))
      assert.is_true(e:release())
      g:close()
      f:close()
    end)

    it("<close> releases at the end of the scope", function()
      local f = assert(ipc.open(path, "r+"))
      do
        local l <close> = assert(ipc.flock(f, "ex"))
        assert.equal(1, tryflock(path, "ex"))
      end
      assert.equal(0, tryflock(path, "ex"))
      do
        local l <close> = assert(ipc.lock(f, { type = "write" }))
        assert.equal(1, trylock(path))
      end
      assert.equal(0, trylock(path))
      f:close()
    end)

    it("the collector releases a dropped lock", function()
      local f = assert(ipc.open(path, "r+"))
      local l = assert(ipc.flock(f, "ex"))
      assert.equal(1, tryflock(path, "ex"))
      l = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.equal(0, tryflock(path, "ex"))
      f:close()
    end)

    it("keep their file object alive", function()
      local l = assert(ipc.flock(assert(ipc.open(path, "r+")), "ex"))
      collectgarbage()
      collectgarbage()
      assert.equal(1, tryflock(path, "ex"))
      assert.is_true(l:release())
      l = nil -- luacheck: ignore
      collectgarbage() -- now the file object goes, and its descriptor with it
      collectgarbage()
    end)

    it("never touch another file that reused the descriptor number after a close", function()
      local other = tmpfile("")
      local f = assert(ipc.open(path, "r+"))
      local fd = f:fileno()
      local l = assert(ipc.flock(f, "ex"))
      local p = assert(ipc.lock(f, { type = "write" }))
      f:close() -- the kernel drops both locks here
      local g = assert(ipc.open(other, "r+"))
      assert.equal(fd, g:fileno())
      local mine = assert(ipc.flock(g, "ex"))
      local mine2 = assert(ipc.lock(g, { type = "write" }))
      assert.is_true(l:release()) -- no flock(fd, LOCK_UN) on g
      p = nil -- luacheck: ignore
      collectgarbage() -- no F_UNLCK on g either
      collectgarbage()
      assert.equal(1, tryflock(other, "ex"))
      assert.equal(1, trylock(other))
      mine:release()
      mine2:release()
      g:close()
      os.remove(other)
    end)

    it("work through io files and integer descriptors", function()
      local fh = assert(io.open(path, "r+"))
      local l = assert(ipc.flock(fh, "ex"))
      assert.equal(1, tryflock(path, "ex"))
      fh:close()
      assert.is_true(l:release()) -- the io file is closed: nothing left to do
      local f = assert(ipc.open(path, "r+"))
      local n = assert(ipc.lock(f:fileno(), { type = "write" }))
      assert.equal(1, trylock(path))
      assert.is_true(n:release())
      assert.equal(0, trylock(path))
      f:close()
    end)
  end)

  describe("bad arguments", function()
    local f, closed, closedio
    before_each(function()
      f = assert(ipc.open(path, "r+"))
      closed = assert(ipc.open(path, "r"))
      closed:close()
      closedio = assert(io.open(path))
      closedio:close()
    end)
    after_each(function() f:close() end)

    local function raises(pattern, fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      assert.matches(pattern, err)
    end

    -- the whole message of a bad argument: "bad argument #n to 'fn' (why)"
    -- (called through pcall, Lua names the function from the module table)
    local function bad(n, fname, why, fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      local name, got = err:match("^bad argument #" .. n .. " to '([%w%.]*)' %((.*)%)$")
      assert.equal(fname, name and name:match("[%w]+$"), err)
      assert.equal(why, got)
    end
    local FD = "descriptor expected (unixipc object, io file, integer or object with getfd/fileno), got "
    local INT64 = "must be an integer from -9223372036854775808 to 9223372036854775807, got "

    it("flock", function()
      bad(1, "flock", FD .. "no value", ipc.flock)
      bad(1, "flock", FD .. "nil", ipc.flock, nil, "ex")
      bad(1, "flock", FD .. "string", ipc.flock, "file", "ex")
      bad(1, "flock", "descriptor must be an integer from 0 to 2147483647, got 1.5", ipc.flock, 1.5, "ex")
      bad(1, "flock", "descriptor must be an integer from 0 to 2147483647, got -1", ipc.flock, -1, "ex")
      bad(1, "flock", "attempt to use a closed descriptor", ipc.flock, closed, "ex")
      bad(1, "flock", "attempt to use a closed file", ipc.flock, closedio, "ex")
      bad(2, "flock", "lock mode expected (\"ex\" or \"sh\"), got no value", ipc.flock, f)
      bad(2, "flock", "unknown lock mode 'exclusive'", ipc.flock, f, "exclusive")
      bad(2, "flock", "unknown lock mode 'nope'", ipc.flock, f, "LOCK_SH|nope")
      raises("^bad argument #2 to '[%w.]*flock' %(unknown lock mode 'ex", ipc.flock, f, "ex\0tra")
      bad(2, "flock", "lock mode must be names or an integer, got table", ipc.flock, f, {})
      -- another family's names are not lock modes
      bad(2, "flock", "unknown lock mode 'write'", ipc.flock, f, "write")
      bad(2, "flock", "unknown lock mode 'MSG_PEEK'", ipc.flock, f, "MSG_PEEK")
      bad(3, "flock", "options must be a table, got string", ipc.flock, f, "ex", "nb")
      bad(3, "flock", "unknown option 'type'", ipc.flock, f, "ex", { type = "write" })
      bad(3, "flock", "unknown option 'nowait'", ipc.flock, f, "ex", { nowait = true })
      bad(3, "flock", "option names must be strings, got number", ipc.flock, f, "ex", { true })
      bad(3, "flock", "option 'wait' must be a boolean or a number of seconds, got string",
        ipc.flock, f, "ex", { wait = "yes" })
      bad(3, "flock", "option 'wait' must not be negative, got -1", ipc.flock, f, "ex", { wait = -1 })
      raises("^bad argument #3 to '[%w.]*flock' %(option 'wait' must not be negative, got %-?nan%)$",
        ipc.flock, f, "ex", { wait = 0 / 0 })
      -- POSIX names in any case, short names and numbers are all lock modes
      for _, mode in ipairs { "EX", "LOCK_EX", "lock_ex", ipc.LOCK_EX } do
        local l = assert(ipc.flock(f, mode))
        assert.matches("flock ex", tostring(l))
        l:release()
      end
      -- system failures are returned, not raised
      local l, msg, err = ipc.flock(1000000, "ex")
      assert.same({ nil, "flock: " .. ipc.strerror(E.EBADF), E.EBADF }, { l, msg, err })
    end)

    it("lock", function()
      bad(1, "lock", FD .. "no value", ipc.lock)
      bad(1, "lock", FD .. "a table with neither", ipc.lock, {})
      bad(1, "lock", "attempt to use a closed descriptor", ipc.lock, closed)
      bad(1, "lock", "attempt to use a closed file", ipc.lock, closedio)
      bad(2, "lock", "options must be a table, got string", ipc.lock, f, "write")
      bad(2, "lock", "unknown lock type 'exclusive'", ipc.lock, f, { type = "exclusive" })
      bad(2, "lock", "unknown lock type 99", ipc.lock, f, { type = 99 })
      bad(2, "lock", "unknown lock type 'ex'", ipc.lock, f, { type = "ex" }) -- a flock mode
      bad(2, "lock", "option 'start' " .. INT64 .. "1.5", ipc.lock, f, { start = 1.5 })
      bad(2, "lock", "option 'start' " .. INT64 .. "string", ipc.lock, f, { start = "0" })
      bad(2, "lock", "option 'len' " .. INT64 .. "table", ipc.lock, f, { len = {} })
      bad(2, "lock", "unknown whence 'middle'", ipc.lock, f, { whence = "middle" })
      bad(2, "lock", "option 'ofd' must be a boolean, got number", ipc.lock, f, { ofd = 1 })
      bad(2, "lock", "option 'wait' must be a boolean or a number of seconds, got table",
        ipc.lock, f, { wait = {} })
      bad(2, "lock", "unknown option 'mode'", ipc.lock, f, { mode = "ex" })
      -- a lock type and a whence by POSIX name (any case), short name or number
      for _, t in ipairs { "F_WRLCK", "f_wrlck", "write", ipc.F_WRLCK } do
        local l = assert(ipc.lock(f, { type = t, whence = "SEEK_SET" }))
        assert.matches("fcntl write", tostring(l))
        l:release()
      end
      local l0 = assert(ipc.lock(f, { type = "read", whence = ipc.SEEK_SET }))
      l0:release()
      -- system failures are returned
      local l, msg, err = ipc.lock(f, { start = -1 })
      assert.same({ nil, "fcntl: " .. ipc.strerror(E.EINVAL), E.EINVAL }, { l, msg, err })
      l, msg, err = ipc.lock(f, { start = 5, len = -6 }) -- reaches back before byte 0
      assert.equal(E.EINVAL, err)
      l, msg, err = ipc.lock(f, { start = math.mininteger, len = math.mininteger })
      assert.equal(E.EINVAL, err)
      l, msg, err = ipc.lock(f, { whence = "end", start = math.maxinteger })
      assert.equal(E.EOVERFLOW, err)
      local ro = assert(ipc.open(path, "r"))
      l, msg, err = ipc.lock(ro, { type = "write" }) -- a write lock needs a writable descriptor
      assert.same({ nil, "fcntl: " .. ipc.strerror(E.EBADF), E.EBADF }, { l, msg, err })
      assert.is_truthy(ipc.lock(ro, { type = "read" }))
      ro:close()
      l, msg, err = ipc.lock(1000000)
      assert.equal(E.EBADF, err)
    end)

    it("testlock", function()
      bad(1, "testlock", FD .. "no value", ipc.testlock)
      bad(1, "testlock", "attempt to use a closed descriptor", ipc.testlock, closed)
      bad(2, "testlock", "options must be a table, got number", ipc.testlock, f, 5)
      bad(2, "testlock", "unknown option 'wait'", ipc.testlock, f, { wait = true })
      bad(2, "testlock", "unknown lock type 'x'", ipc.testlock, f, { type = "x" })
      bad(2, "testlock", "option 'start' " .. INT64 .. "0.5", ipc.testlock, f, { start = 0.5 })
      bad(2, "testlock", "whence expected, got boolean", ipc.testlock, f, { whence = true })
      bad(2, "testlock", "unknown whence 'SEEK_MIDDLE'", ipc.testlock, f, { whence = "SEEK_MIDDLE" })
      bad(2, "testlock", "unknown whence 99", ipc.testlock, f, { whence = 99 })
      assert.is_nil(ipc.testlock(f, { whence = "SET" })) -- any case: nobody else holds a lock
      assert.is_nil(ipc.testlock(f, { whence = 0 }))
      local t, msg, err = ipc.testlock(1000000)
      assert.same({ nil, "fcntl: " .. ipc.strerror(E.EBADF), E.EBADF }, { t, msg, err })
    end)

    it("lock object methods", function()
      local l = assert(ipc.flock(f, "ex"))
      local release = l.release
      raises("bad argument #1.*unixipc lock expected", release, f)
      raises("bad argument #1.*unixipc lock expected", release, 5)
      raises("bad argument #1", release)
      assert.is_true(release(l))
      local tostr = getmetatable(l).__tostring
      raises("unixipc lock expected", tostr, {})
    end)
  end)
end)

describe("release after tofile (review fix)", function()
  it("says the lock lives on in the io file instead of claiming success", function()
    local path = os.tmpname()
    local f = assert(ipc.open(path, "w"))
    local l = assert(ipc.flock(f, "ex"))
    local io_f = f:tofile("w")
    local ok, msg, err = l:release()
    assert.is_nil(ok)
    assert.matches("^release: the descriptor was handed to an io file", msg)
    assert.equal(ipc.errno.EBADF, err)
    -- still held until the io file closes
    local other = assert(ipc.open(path, "r"))
    assert.is_nil(ipc.flock(other, "ex", { wait = false }))
    io_f:close()
    local l2 = assert(ipc.flock(other, "ex", { wait = false }))
    l2:release()
    other:close()
    os.remove(path)
  end)
end)

describe("release after dup2 onto the file object", function()
  it("does not unlock the file the descriptor number now stands for", function()
    local p1, p2 = os.tmpname(), os.tmpname()
    local a = assert(ipc.open(p1, "w"))
    local b = assert(ipc.open(p2, "w"))
    local l = assert(ipc.flock(a, "ex"))
    local pl = assert(ipc.lock(a, { type = "write" }))
    -- a's descriptor now shares b's open file description; dup2 closed the
    -- old one, which dropped both of a's locks in the kernel
    assert(ipc.dup2(b, a))
    local lb = assert(ipc.flock(b, "ex"))
    assert.is_true(l:release())
    assert.is_true(pl:release())
    assert.equal("lock (released)", tostring(l))
    -- b's flock is still held: another description of p2 cannot take it
    local other = assert(ipc.open(p2, "r"))
    assert.is_nil(ipc.flock(other, "ex", { wait = false }))
    assert.is_true(lb:release())
    local l2 = assert(ipc.flock(other, "ex", { wait = false }))
    l2:release()
    -- and the first file was unlocked by the dup2 itself
    local first = assert(ipc.open(p1, "r"))
    local l3 = assert(ipc.flock(first, "ex", { wait = false }))
    l3:release()
    for _, o in ipairs({ a, b, other, first }) do o:close() end
    os.remove(p1)
    os.remove(p2)
  end)
end)
