-- The environment and systemd's protocols: setenv/unsetenv, listenfds()
-- (socket activation, with the real systemd-socket-activate where it is
-- installed) and notify() (sd_notify, received here on our own
-- NOTIFY_SOCKET).
local ipc = require "unixipc"
local S = require "support"

local errno = ipc.errno

-- run fn with the variables set as given (false: unset), then put back
-- what was there
local function withenv(vars, fn)
  local saved = {}
  for k, v in pairs(vars) do
    saved[k] = os.getenv(k) or false
    if v then ipc.setenv(k, v) else ipc.unsetenv(k) end
  end
  local ok, err = pcall(fn)
  for k, v in pairs(saved) do
    if v then ipc.setenv(k, v) else ipc.unsetenv(k) end
  end
  if not ok then error(err, 0) end
end

-- in a child: make descriptors 3, 4, ... the given objects (closing them)
local function place(list)
  for i, o in ipairs(list) do
    local tmp = assert(ipc.fdopen(assert(ipc.dup2(o, 100 + i))))
    o:close()
    list[i] = tmp
  end
  for i, tmp in ipairs(list) do
    assert(ipc.dup2(tmp, 2 + i))
    tmp:close()
  end
end

local function freeport()
  local s = assert(ipc.listen("127.0.0.1:0"))
  local port = s:getsockname().port
  s:close()
  return port
end

-- connect to addr, retrying while nobody listens yet
local function connect(addr, secs)
  local deadline = ipc.monotime() + (secs or 5)
  repeat
    local c = ipc.connect(addr, { timeout = 1 })
    if c then return c end
    ipc.sleep(0.02)
  until ipc.monotime() > deadline
  return assert(ipc.connect(addr, { timeout = 1 }))
end

describe("setenv / unsetenv", function()
  it("set, keep, replace and remove a variable the way os.getenv sees it", function()
    local name = "UNIXIPC_SPEC_" .. ipc.getpid()
    assert.is_nil(os.getenv(name))
    assert.is_true(ipc.setenv(name, "one"))
    assert.equal("one", os.getenv(name))
    assert.is_true(ipc.setenv(name, "two", false))
    assert.equal("one", os.getenv(name))
    assert.is_true(ipc.setenv(name, 42))
    assert.equal("42", os.getenv(name))
    assert.is_true(ipc.unsetenv(name))
    assert.is_nil(os.getenv(name))
    assert.is_true(ipc.unsetenv(name)) -- not there: still fine, as unsetenv(3)
  end)

  it("children see the change", function()
    local name = "UNIXIPC_SPEC_CHILD"
    ipc.setenv(name, "seen")
    local p = io.popen("echo $" .. name)
    local out = p:read("a")
    p:close()
    ipc.unsetenv(name)
    assert.equal("seen\n", out)
  end)

  it("raises on bad names and values", function()
    local setenv, unsetenv = function(...) return ipc.setenv(...) end, function(...) return ipc.unsetenv(...) end
    local cases = {
      { ipc.setenv, { "", "x" }, "bad argument #1 to 'setenv' (invalid environment name '')" },
      { ipc.setenv, { "A=B", "x" }, "bad argument #1 to 'setenv' (invalid environment name 'A=B')" },
      { ipc.setenv, { "A\0B", "x" }, "bad argument #1 to 'setenv' (invalid environment name 'A')" },
      { ipc.setenv, { "A", nil }, "bad argument #2 to 'setenv' (value must be a string or a number, got nil)" },
      { ipc.setenv, { "A", {} }, "bad argument #2 to 'setenv' (value must be a string or a number, got table)" },
      { ipc.setenv, { "A", "x\0y" }, "bad argument #2 to 'setenv' (value contains a zero byte)" },
      { ipc.setenv, { "A", "x", "yes" }, "bad argument #3 to 'setenv' (boolean expected, got string)" },
      { ipc.unsetenv, { "A=B" }, "bad argument #1 to 'unsetenv' (invalid environment name 'A=B')" },
      { ipc.unsetenv, {}, "bad argument #1 to 'unsetenv' (string expected, got nil)" },
    }
    for _, case in ipairs(cases) do
      local f, args = case[1] == ipc.setenv and setenv or unsetenv, case[2]
      local ok, err = pcall(function() return f(table.unpack(args, 1, 3)) end)
      assert.is_false(ok)
      assert.equal(case[3], err:gsub("^[^:]*:%d+: ", ""))
    end
  end)
end)

describe("listenfds", function()
  it("is empty when nothing was passed, and when LISTEN_PID names another process", function()
    withenv({ LISTEN_PID = false, LISTEN_FDS = false, LISTEN_FDNAMES = false }, function()
      local objs, names = ipc.listenfds()
      assert.same({}, objs)
      assert.same({}, names)
    end)
    withenv({ LISTEN_PID = "1", LISTEN_FDS = "2", LISTEN_FDNAMES = "a:b" }, function()
      local objs, names = ipc.listenfds()
      assert.same({}, objs)
      assert.same({}, names)
      -- unset all the same, as sd_listen_fds(1) does
      assert.is_nil(os.getenv("LISTEN_PID"))
      assert.is_nil(os.getenv("LISTEN_FDS"))
      assert.is_nil(os.getenv("LISTEN_FDNAMES"))
    end)
  end)

  it("fails with EINVAL on malformed variables, and unsets them", function()
    local me = tostring(ipc.getpid())
    local cases = {
      { { LISTEN_PID = "x", LISTEN_FDS = "1" }, "listenfds: LISTEN_PID is not a process id: 'x'" },
      { { LISTEN_PID = me, LISTEN_FDS = "-1" }, "listenfds: LISTEN_FDS is not a count: '-1'" },
      { { LISTEN_PID = me, LISTEN_FDS = "1x" }, "listenfds: LISTEN_FDS is not a count: '1x'" },
      { { LISTEN_PID = me, LISTEN_FDS = "2", LISTEN_FDNAMES = "one" },
        "listenfds: LISTEN_FDNAMES has 1 names for 2 descriptors" },
    }
    for _, case in ipairs(cases) do
      local vars = { LISTEN_PID = false, LISTEN_FDS = false, LISTEN_FDNAMES = false }
      for k, v in pairs(case[1]) do vars[k] = v end
      withenv(vars, function()
        local objs, msg, err = ipc.listenfds()
        assert.is_nil(objs)
        assert.equal(case[2], msg)
        assert.equal(errno.EINVAL, err)
        assert.is_nil(os.getenv("LISTEN_FDS"))
      end)
    end
  end)

  it("wraps descriptors 3, 4, ... as objects of their class, with their names", function()
    -- in a child, where descriptors 3 to 6 can be made what systemd would pass
    local code = S.wait(S.child(function()
      local tcp = assert(ipc.listen("127.0.0.1:0"))
      local dgram = assert(ipc.socket("unix", "dgram"))
      local seq = assert(ipc.listen("@unixipc-listenfds-" .. ipc.getpid(), { type = "seqpacket" }))
      local r, w = assert(ipc.pipe())
      local port = tcp:getsockname().port
      place({ tcp, dgram, seq, r })
      w:close()
      ipc.setenv("LISTEN_PID", tostring(ipc.getpid()))
      ipc.setenv("LISTEN_FDS", "4")
      ipc.setenv("LISTEN_FDNAMES", "web:log::pipe")
      local objs, names = assert(ipc.listenfds())
      assert(#objs == 4, "4 objects")
      assert(names[1] == "web" and names[2] == "log" and names[3] == "" and names[4] == "pipe", "names")
      assert(tostring(objs[1]) == "socket (inet stream, fd 3)", tostring(objs[1]))
      assert(tostring(objs[2]) == "socket (unix dgram, fd 4)", tostring(objs[2]))
      assert(tostring(objs[3]) == "socket (unix seqpacket, fd 5)", tostring(objs[3]))
      assert(tostring(objs[4]):match("^descriptor"), tostring(objs[4]))
      assert(objs[1]:getsockname().port == port, "the listener itself")
      assert(objs[1]:getoption("acceptconn") == true, "listening")
      for i = 1, 4 do assert(S.cloexec(objs[i]), "close-on-exec " .. i) end
      assert(os.getenv("LISTEN_PID") == nil and os.getenv("LISTEN_FDS") == nil
        and os.getenv("LISTEN_FDNAMES") == nil, "unset")
      local again = ipc.listenfds()
      assert(#again == 0, "a second call finds nothing")
      for _, o in ipairs(objs) do o:close() end
    end))
    assert.equal(0, code)
  end)

  it("names default to 'unknown'; a descriptor that is not open fails with EBADF before any is taken", function()
    local code = S.wait(S.child(function()
      place({ assert(ipc.listen("127.0.0.1:0")) })
      ipc.setenv("LISTEN_PID", tostring(ipc.getpid()))
      ipc.setenv("LISTEN_FDS", "1")
      local objs, names = assert(ipc.listenfds())
      assert(names[1] == "unknown" and #objs == 1, "unknown")
      objs[1]:close()
      -- now 3 is closed
      ipc.setenv("LISTEN_PID", tostring(ipc.getpid()))
      ipc.setenv("LISTEN_FDS", "1")
      local none, msg, err = ipc.listenfds()
      assert(none == nil and err == errno.EBADF, tostring(msg))
      assert(msg == "listenfds descriptor 3: Bad file descriptor", msg)
    end))
    assert.equal(0, code)
  end)

  it("takes what the real systemd-socket-activate passes (TCP and a unix path, named)", function()
    if not S.have("systemd-socket-activate") then
      pending("systemd-socket-activate is not installed (Debian package systemd): skipped")
      return
    end
    local dir, rm = S.tmpdir()
    local port = freeport()
    local path = dir .. "/a.sock"
    local prog = [[
      local ipc = require "unixipc"
      local objs, names = assert(ipc.listenfds())
      local out = {}
      for i, o in ipairs(objs) do
        out[#out + 1] = names[i] .. "=" .. tostring(o:getsockname()) .. "/" .. tostring(o:getoption("acceptconn"))
      end
      out[#out + 1] = tostring(os.getenv("LISTEN_FDS"))
      local c = assert(objs[1]:accept())
      assert(c:sendall(table.concat(out, " ") .. "\n"))
      c:close()
    ]]
    local cmd = ("systemd-socket-activate -l 127.0.0.1:%d -l %s --fdname=web:admin "
      .. "-E LUA_PATH -E LUA_CPATH -E ASAN_OPTIONS -E LSAN_OPTIONS -E UBSAN_OPTIONS lua5.4 -e %s 2>%s/err"):format(port, path, S.quote(prog), dir)
    local p = assert(io.popen("LUA_PATH='lua/?.lua;;' LUA_CPATH='" .. (os.getenv("LUA_CPATH") or "build/?.so;;")
      .. "' exec " .. cmd, "r"))
    local c = connect("127.0.0.1:" .. port)
    c:settimeout(10)
    local line = c:recv(1000)
    c:close()
    p:close()
    local f = io.open(dir .. "/err")
    local err = f and f:read("a") or ""
    if f then f:close() end
    rm()
    assert.equal(("web=127.0.0.1:%d/true admin=%s/true nil\n"):format(port, path), line, err)
  end)
end)

describe("notify", function()
  local function receiver(addr)
    local r = assert(ipc.socket("unix", "dgram"))
    assert(r:bind(addr))
    r:settimeout(5)
    return r
  end

  it("returns false when NOTIFY_SOCKET is unset", function()
    withenv({ NOTIFY_SOCKET = false }, function()
      assert.is_false(ipc.notify("READY=1"))
      assert.is_false(ipc.notify({ READY = 1 }))
    end)
  end)

  it("sends a string or a table of fields to an abstract socket", function()
    local name = "@unixipc-notify-" .. ipc.getpid()
    local r = receiver(name)
    withenv({ NOTIFY_SOCKET = name }, function()
      assert.is_true(ipc.notify("READY=1"))
      assert.equal("READY=1", r:recv(4096))
      assert.is_true(ipc.notify({ STATUS = "serving 4 workers", READY = true, MAINPID = 1234,
        WATCHDOG_USEC = 2.0e6 }))
      assert.equal("MAINPID=1234\nREADY=1\nSTATUS=serving 4 workers\nWATCHDOG_USEC=2000000", r:recv(4096))
    end)
    r:close()
  end)

  it("sends to a path, with descriptors for the fd store", function()
    local dir, rm = S.tmpdir()
    local path = dir .. "/notify"
    local r = receiver(path)
    local a, b = assert(ipc.socketpair())
    withenv({ NOTIFY_SOCKET = path }, function()
      assert.is_true(ipc.notify({ FDSTORE = 1, FDNAME = "conn" }, { a }))
      local data, fds = r:recvmsg()
      assert.equal("FDNAME=conn\nFDSTORE=1", data)
      assert.equal(1, #fds)
      assert(fds[1]:send("x"))
      assert.equal("x", b:recv(1))
      fds[1]:close()
    end)
    S.closeall({ a, b, r })
    rm()
  end)

  it("fails with nil, message, errno when nobody listens or the address is foreign", function()
    local dir, rm = S.tmpdir()
    withenv({ NOTIFY_SOCKET = dir .. "/nobody" }, function()
      local ok, msg, err = ipc.notify("READY=1")
      assert.is_nil(ok)
      assert.equal("notify " .. dir .. "/nobody: No such file or directory", msg)
      assert.equal(errno.ENOENT, err)
    end)
    withenv({ NOTIFY_SOCKET = "vsock:2:1234" }, function()
      local ok, msg, err = ipc.notify("READY=1")
      assert.is_nil(ok)
      assert.equal("notify: unsupported NOTIFY_SOCKET address 'vsock:2:1234'", msg)
      assert.equal(errno.EAFNOSUPPORT, err)
    end)
    rm()
  end)

  it("raises on bad states and descriptors", function()
    local name = "@unixipc-notify-bad-" .. ipc.getpid()
    local r = receiver(name)
    withenv({ NOTIFY_SOCKET = name }, function()
      local cases = {
        { { nil }, "bad argument #1 to 'notify' (state must be a string or a table of fields, got nil)" },
        { { 1 }, "bad argument #1 to 'notify' (state must be a string or a table of fields, got number)" },
        { { { ready = 1 } },
          "bad argument #1 to 'notify' (field names must be upper-case words like 'READY', got 'ready')" },
        { { { [1] = "READY=1" } },
          "bad argument #1 to 'notify' (field names must be upper-case words like 'READY', got number)" },
        { { { READY = false } }, "bad argument #1 to 'notify' (field 'READY' must be a string, a number or true, got false)" },
        { { { STATUS = {} } }, "bad argument #1 to 'notify' (field 'STATUS' must be a string, a number or true, got table)" },
        { { { STATUS = "a\nREADY=1" } }, "bad argument #1 to 'notify' (field 'STATUS' must not contain a newline)" },
        { { "READY=1", "fd" }, "bad argument #2 to 'notify' (fds must be a list of descriptors, got string)" },
        { { "READY=1", { true } }, "bad argument #2 to 'notify' (fds[1]: descriptor expected" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(ipc.notify, table.unpack(case[1], 1, 2))
        assert.is_false(ok)
        assert.equal(case[2], err:sub(1, #case[2]))
      end
      -- nothing was sent by any of them
      r:settimeout(0)
      assert.is_nil((r:recv(100)))
    end)
    r:close()
  end)
end)
