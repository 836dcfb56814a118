-- The conventions of DESIGN.md that hold for every function, one
-- describe per finding of issue 11 (each of these failed before the
-- ground-floor rewrite): strict option tables that name the user's
-- function and line, flags by family, event letters, what
-- listen{unlink = true} may remove, one status vocabulary, the unix
-- connect to a full backlog, and resolver codes told apart from errno.
local ipc = require "unixipc"
local server = require "unixipc.server"
local S = require "support"

local E = ipc.errno

-- fn (a function written on ONE line of this file) raises exactly
-- "<this file>:<that line>: bad argument #n to 'fname' (why)": the user's
-- function is named, and the position is the user's line, never a line
-- of lua/unixipc/*.lua
local function raises(fname, n, why, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "no error from " .. fname)
  local info = debug.getinfo(fn, "S")
  assert.equal(("%s:%d: bad argument #%d to '%s' (%s)"):format(info.short_src, info.linedefined, n,
    fname, why), err)
end

-- results of a call that should have raised, closed (so that a failure
-- here leaves nothing open)
local kept = {}
local function keep(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "userdata" and v.close then kept[#kept + 1] = v end
  end
end
local function closekept()
  for _, v in ipairs(kept) do v:close() end
  kept = {}
end

local filetype = S.filetype

describe("option tables are strict", function()
  local dir, cleanup, path
  before_each(function()
    dir, cleanup = S.tmpdir()
    path = dir .. "/s.sock"
  end)
  after_each(function()
    closekept()
    cleanup()
  end)

  it("a misspelt option raises instead of being ignored", function()
    local srv = assert(ipc.listen(path))
    raises("listen", 2, "unknown option 'unlnk'", function() keep(ipc.listen(path, { unlnk = true })) end)
    raises("socketpair", 2, "unknown option 'timout'", function() keep(ipc.socketpair("stream", { timout = 1 })) end)
    raises("connect", 2, "unknown option 'timeot'", function() keep(ipc.connect(path, { timeot = 1 })) end)
    raises("socket", 3, "unknown option 'nonblok'", function() keep(ipc.socket("unix", "stream", { nonblok = true })) end)
    raises("listen", 2, "unknown option 'backlg'", function() keep(ipc.listen("127.0.0.1:0", { backlg = 5 })) end)
    srv:close()
    -- the right spellings are taken
    local a, b = assert(ipc.socketpair("stream", { timeout = 1 }))
    assert.equal(1, a:timeout())
    a:close()
    b:close()
  end)

  it("in every function that takes one, C and Lua alike, with one message", function()
    local a, b = ipc.socketpair()
    local f = assert(ipc.open(dir .. "/lockfile", "w+"))
    local cases = {
      { "socketpair", 2, function() keep(ipc.socketpair("stream", { bogus = 1 })) end },
      { "socket", 3, function() keep(ipc.socket("unix", "stream", { bogus = 1 })) end },
      { "listen", 2, function() keep(ipc.listen(path, { bogus = 1 })) end },
      { "connect", 2, function() keep(ipc.connect(path, { bogus = 1 })) end },
      { "getaddrinfo", 3, function() keep(ipc.getaddrinfo("localhost", "80", { bogus = 1 })) end },
      { "getnameinfo", 2, function() keep(ipc.getnameinfo("127.0.0.1:22", { bogus = 1 })) end },
      { "sendmsg", 1, function() keep(a:sendmsg { data = "x", bogus = 1 }) end },
      { "recvmsg", 1, function() keep(b:recvmsg { bogus = 1 }) end },
      { "flock", 3, function() keep(ipc.flock(f, "ex", { bogus = 1 })) end },
      { "lock", 2, function() keep(ipc.lock(f, { bogus = 1 })) end },
      { "testlock", 2, function() keep(ipc.testlock(f, { bogus = 1 })) end },
      { "signalfd", 2, function() keep(ipc.signalfd({ "USR1" }, { bogus = 1 })) end },
      { "channel", 2, function() keep(ipc.channel(a, { bogus = 1 })) end },
      { "daemonize", 1, function() keep(ipc.daemonize { bogus = 1 }) end },
      { "run", 1, function() keep(server.run { bogus = 1 }) end },
    }
    for _, c in ipairs(cases) do raises(c[1], c[2], "unknown option 'bogus'", c[3]) end
    -- nothing was sent by the refused sendmsg
    assert.same({ nil, "recv: " .. ipc.strerror(E.EAGAIN), E.EAGAIN }, { b:recv(10, "dontwait") })
    a:close()
    b:close()
    f:close()
  end)

  it("option values are checked where the user called", function()
    raises("listen", 2, "option 'backlog' must be an integer from 0 to 2147483647, got -1",
      function() keep(ipc.listen(path, { backlog = -1 })) end)
    raises("listen", 2, "option 'unlink' must be a boolean, got string", function() keep(ipc.listen(path, { unlink = "yes" })) end)
    raises("listen", 2, "options must be a table, got string", function() keep(ipc.listen(path, "unlink")) end)
    raises("listen", 2, "option names must be strings, got number", function() keep(ipc.listen(path, { true })) end)
    -- one option, one message, whether C (socketpair, socket) or Lua (connect) checks it
    raises("socketpair", 2, "option 'timeout' must not be negative, got -1",
      function() keep(ipc.socketpair("stream", { timeout = -1 })) end)
    raises("socket", 3, "option 'timeout' must not be negative, got -1",
      function() keep(ipc.socket("unix", "stream", { timeout = -1 })) end)
    raises("connect", 2, "option 'timeout' must not be negative, got -1",
      function() keep(ipc.connect(path, { timeout = -1 })) end)
    raises("socketpair", 2, "option 'timeout' must be a number of seconds or nil, got string",
      function() keep(ipc.socketpair("stream", { timeout = "soon" })) end)
    raises("connect", 2, "option 'timeout' must be a number of seconds or nil, got string",
      function() keep(ipc.connect(path, { timeout = "soon" })) end)
  end)
end)

describe("flags take the names of their own family", function()
  it("waitpid takes WNOHANG, nohang and ipc.WNOHANG, and no message flag", function()
    local r, w = ipc.pipe()
    local pid = S.child(function() w:close(); r:read(1) end)
    r:close()
    -- the child is running: a no-hang wait answers 0 at once
    assert.same({ 0 }, { ipc.waitpid(-1, "WNOHANG") })
    assert.same({ 0 }, { ipc.waitpid(pid, "wnohang") })
    assert.same({ 0 }, { ipc.waitpid(pid, "nohang") })
    assert.same({ 0 }, { ipc.waitpid(pid, ipc.WNOHANG) })
    assert.same({ 0 }, { ipc.waitpid(pid, "WNOHANG|WUNTRACED") })
    raises("waitpid", 2, "unknown wait option 'msg_nohang'", function() keep(ipc.waitpid(-1, "msg_nohang")) end)
    raises("waitpid", 2, "unknown wait option 'MSG_UNTRACED'", function() keep(ipc.waitpid(-1, "MSG_UNTRACED")) end)
    raises("waitpid", 2, "unknown wait option 'MSG_PEEK'", function() keep(ipc.waitpid(-1, "MSG_PEEK")) end)
    raises("waitpid", 2, "unknown wait option 'LOCK_NB'", function() keep(ipc.waitpid(-1, "LOCK_NB")) end)
    w:close()
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid, "WUNTRACED") })
  end)

  it("recv takes message flags and no wait option", function()
    local a, b = ipc.socketpair()
    assert(a:send("xy"))
    assert.equal("x", b:recv(1, "MSG_PEEK"))
    assert.equal("xy", b:recv(10, "msg_dontwait|peek"))
    raises("recv", 2, "unknown flag 'WNOHANG'", function() keep(b:recv(10, "WNOHANG")) end)
    raises("recv", 2, "unknown flag 'nohang'", function() keep(b:recv(10, "nohang")) end)
    raises("send", 2, "unknown flag 'LOCK_NB'", function() keep(a:send("z", "LOCK_NB")) end)
    assert.equal("xy", b:recv(10))
    a:close()
    b:close()
  end)

  it("flock takes ipc.LOCK_EX, \"LOCK_EX\" and \"ex|nb\"", function()
    local dir, cleanup = S.tmpdir()
    local f = assert(ipc.open(dir .. "/f", "w+"))
    local g = assert(ipc.open(dir .. "/f", "r+")) -- another open: its flock conflicts
    local l = assert(ipc.flock(f, ipc.LOCK_EX))
    assert.is_true(l:release())
    l = assert(ipc.flock(f, "LOCK_EX"))
    -- busy: a non-blocking request says EWOULDBLOCK, named or numbered
    assert.same({ nil, "flock: " .. ipc.strerror(E.EWOULDBLOCK), E.EWOULDBLOCK }, { ipc.flock(g, "ex|nb") })
    assert.same({ nil, "flock: " .. ipc.strerror(E.EWOULDBLOCK), E.EWOULDBLOCK },
      { ipc.flock(g, "LOCK_SH|LOCK_NB") })
    assert.same({ nil, "flock: " .. ipc.strerror(E.EWOULDBLOCK), E.EWOULDBLOCK },
      { ipc.flock(g, ipc.LOCK_EX | ipc.LOCK_NB) })
    raises("flock", 2, "unknown lock mode 'MSG_PEEK'", function() keep(ipc.flock(g, "MSG_PEEK")) end)
    raises("flock", 2, "unknown lock mode 'nohang'", function() keep(ipc.flock(g, "ex|nohang")) end)
    assert.is_true(l:release())
    l = assert(ipc.flock(g, "ex|nb")) -- free again: granted at once
    assert.is_true(l:release())
    f:close()
    g:close()
    cleanup()
  end)
end)

describe("messages name what the user wrote", function()
  it("poll names the whole event string", function()
    local a, b = ipc.socketpair()
    raises("poll", 1, 'poll events must be letters r, w and p ("r", "w", "rw"), got \'read\'',
      function() keep(ipc.poll({ [a] = "read" }, 0)) end)
    a:close()
    b:close()
  end)

  it("listen names itself and the user's line for a bad socket type", function()
    local dir, cleanup = S.tmpdir()
    raises("listen", 2, "unknown socket type 'datagram'", function() keep(ipc.listen(dir .. "/d.sock", { type = "datagram" })) end)
    raises("connect", 2, "unknown socket type 'datagram'", function() keep(ipc.connect(dir .. "/d.sock", { type = "datagram" })) end)
    raises("listen", 1, "address expected (string or table), got number", function() keep(ipc.listen(5)) end)
    raises("connect", 1, "invalid address 'nohost': expected a path with '/', '@name', 'host:port' or '[v6addr]:port'",
      function() keep(ipc.connect("nohost")) end)
    assert.is_nil(filetype(dir .. "/d.sock"))
    closekept()
    cleanup()
  end)
end)

describe("listen{unlink = true} removes only a dead socket file", function()
  local dir, cleanup, path
  before_each(function()
    dir, cleanup = S.tmpdir()
    path = dir .. "/s.sock"
  end)
  after_each(function() cleanup() end)

  local function busy(why)
    return { nil, "listen " .. path .. ": " .. ipc.strerror(E.EADDRINUSE) .. " (" .. why .. ")", E.EADDRINUSE }
  end

  it("leaves a regular file alone", function()
    local fh = assert(io.open(path, "w"))
    fh:write("precious")
    fh:close()
    assert.same(busy("by a file"), { ipc.listen(path, { unlink = true }) })
    fh = assert(io.open(path))
    assert.equal("precious", fh:read("a"))
    fh:close()
  end)

  it("leaves a directory alone", function()
    assert.is_true(os.execute("mkdir " .. path .. " && touch " .. path .. "/inside"))
    assert.same(busy("by a directory"), { ipc.listen(path, { unlink = true }) })
    assert.equal("directory", filetype(path))
    assert.equal("file", filetype(path .. "/inside"))
  end)

  it("leaves a live server's socket alone, and the server keeps its new connections", function()
    local srv = assert(ipc.listen(path))
    assert.same(busy("a server answers there"), { ipc.listen(path, { unlink = true }) })
    assert.equal("socket", filetype(path))
    local c = assert(ipc.connect(path))
    assert(c:send("still mine"))
    -- the probe left nothing in the server's queue: the next connection is ours
    local conn = assert(srv:accept())
    assert.equal("still mine", conn:recv(100))
    conn:close()
    c:close()
    srv:close()
  end)

  it("leaves a live datagram server's socket alone too", function()
    local srv = assert(ipc.listen(path, { type = "dgram" }))
    assert.same(busy("a server answers there"), { ipc.listen(path, { unlink = true, type = "dgram" }) })
    local c = ipc.socket("unix", "dgram")
    assert(c:sendto("dgram", path))
    assert.equal("dgram", srv:recv(10))
    c:close()
    srv:close()
  end)

  it("removes a stale socket file, and the new server listens there", function()
    local old = ipc.socket("unix", "stream")
    assert(old:bind(path))
    old:close() -- closed without unlinking: nobody answers
    assert.equal("socket", filetype(path))
    assert.same({ nil, "bind: " .. ipc.strerror(E.EADDRINUSE), E.EADDRINUSE }, { ipc.listen(path) })
    local srv = assert(ipc.listen(path, { unlink = true }))
    local c = assert(ipc.connect(path))
    local conn = assert(srv:accept())
    assert(c:send("new"))
    assert.equal("new", conn:recv(10))
    conn:close()
    c:close()
    srv:close()
  end)

  it("removes its path when the server socket is closed, in the process that bound it", function()
    -- close()
    local srv = assert(ipc.listen(path, { unlink = true }))
    assert.equal("socket", filetype(path))
    srv:close()
    assert.is_nil(filetype(path))
    -- <close>
    do
      local s <close> = assert(ipc.listen(path, { unlink = true }))
      assert.equal("socket", filetype(path))
    end
    assert.is_nil(filetype(path))
    -- __gc
    do
      local _ = assert(ipc.listen(path, { unlink = true }))
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(filetype(path))
    -- without unlink = true nothing is removed
    srv = assert(ipc.listen(path))
    srv:close()
    assert.equal("socket", filetype(path))
  end)

  it("is not removed by a forked child closing or collecting its copy", function()
    local srv = assert(ipc.listen(path, { unlink = true }))
    assert.equal(0, S.run(function()
      srv:close()
      srv = nil
      collectgarbage()
      collectgarbage()
    end))
    assert.equal(0, S.run(function() srv = nil; collectgarbage(); collectgarbage() end))
    assert.equal("socket", filetype(path))
    local c = assert(ipc.connect(path))
    local conn = assert(srv:accept())
    conn:close()
    c:close()
    srv:close()
    assert.is_nil(filetype(path))
  end)

  it("is not removed at close once the path names another file", function()
    local srv = assert(ipc.listen(path, { unlink = true }))
    assert(ipc.unlink(path))
    local fh = assert(io.open(path, "w"))
    fh:write("someone else's")
    fh:close()
    srv:close()
    assert.equal("file", filetype(path))
  end)

  it("mode = 0600 gives the socket file exactly that mode", function()
    for _, m in ipairs { "600", "660", "700" } do
      local srv = assert(ipc.listen(path, { mode = tonumber(m, 8), unlink = true }))
      local p = io.popen("stat -c %a " .. path)
      assert.equal(m, p:read("l"))
      p:close()
      srv:close()
    end
  end)
end)

describe("one vocabulary for how a process ended", function()
  -- every place that reports one end of a process, in os.execute's words
  -- (each body ends its process itself)
  local ends = {
    { how = "exit", code = 3, body = function() ipc._exit(3) end },
    { how = "signal", code = ipc.SIGTERM, body = function() ipc.kill(ipc.getpid(), "TERM"); ipc.sleep(10) end },
  }
  for _, e in ipairs(ends) do
    it(('"%s": waitpid, reap, signal records and p:wait agree'):format(e.how), function()
      local sig = assert(ipc.signalfd({ "CHLD" }))
      -- a SIGCHLD record, then reap()
      local pid = S.child(e.body)
      local rec = assert(sig:read(10))
      assert.same({ pid, e.how, e.code }, { rec.pid, rec.how, rec.status })
      assert.same({ { pid = pid, how = e.how, code = e.code } }, ipc.reap())
      -- a SIGCHLD record, then waitpid
      pid = S.child(e.body)
      rec = assert(sig:read(10))
      assert.same({ pid, e.how, e.code }, { rec.pid, rec.how, rec.status })
      assert.same({ pid, e.how, e.code }, { ipc.waitpid(pid) })
      -- spawn's p:wait, as os.execute says it
      local p = assert(ipc.spawn(e.body))
      assert.same({ nil, e.how, e.code }, { p:wait() })
      p.chan:close()
      while sig:read(0) do end
      sig:close()
    end)
  end

  it('"stop" and "continue": waitpid and signal records agree', function()
    local sig = assert(ipc.signalfd({ "CHLD" }))
    local r, w = ipc.pipe()
    local pid = S.child(function() w:close(); r:read(1) end)
    r:close()
    assert(ipc.kill(pid, "STOP"))
    local rec = assert(sig:read(10))
    assert.same({ pid, "stop", ipc.SIGSTOP }, { rec.pid, rec.how, rec.status })
    assert.same({ pid, "stop", ipc.SIGSTOP }, { ipc.waitpid(pid, "untraced") })
    assert(ipc.kill(pid, "CONT"))
    rec = assert(sig:read(10))
    assert.same({ pid, "continue", ipc.SIGCONT }, { rec.pid, rec.how, rec.status })
    assert.same({ pid, "continue", ipc.SIGCONT }, { ipc.waitpid(pid, "continued") })
    w:close()
    assert.same({ pid, "exit", 0 }, { ipc.waitpid(pid) })
    sig:close()
  end)
end)

describe("a unix connect to a full backlog", function()
  it("is EAGAIN from a timed or non-blocking socket, and a timeout from ipc.connect", function()
    local dir, cleanup = S.tmpdir()
    local path = dir .. "/full.sock"
    local srv = assert(ipc.listen(path, { backlog = 0 })) -- nobody accepts
    local held = {}
    for _ = 1, 64 do -- fill the backlog with non-blocking connects
      local c = ipc.socket("unix", "stream", { nonblock = true })
      local ok, _, err = c:connect(path)
      c:close()
      if not ok then
        assert.equal(E.EAGAIN, err)
        break
      end
      held[#held + 1] = c
    end
    assert.is_true(#held >= 1 and #held < 64)
    local again = { nil, "connect: " .. ipc.strerror(E.EAGAIN), E.EAGAIN }
    local timed = ipc.socket("unix", "stream")
    assert(timed:settimeout(5))
    assert.same(again, { timed:connect(path) })
    timed:close()
    local nb = ipc.socket("unix", "stream", { nonblock = true })
    assert.same(again, { nb:connect(path) })
    nb:close()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ipc.connect(path, { timeout = 0.2 }) })
    srv:close()
    cleanup()
  end)
end)

describe("resolver failures", function()
  -- the ipc.EAI_* codes: all negative, so never an errno
  local eai = {}
  for k, v in pairs(ipc) do
    if type(k) == "string" and k:match("^EAI_") then eai[v] = k end
  end

  local function resolverfail(op, ok, msg, code)
    assert.is_nil(ok)
    assert.is_true(math.type(code) == "integer" and code < 0, tostring(code))
    assert.is_not_nil(eai[code], "not an ipc.EAI_* code: " .. tostring(code))
    local text = ipc.strerror(code)
    assert.is_true(#text > 0 and not text:match("^Unknown error"), text)
    assert.equal(op .. ": " .. text, msg)
  end

  it("give a negative code, one of ipc.EAI_*, that strerror explains", function()
    for _, name in ipairs { "EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_SERVICE", "EAI_FAMILY" } do
      assert.is_true(ipc[name] < 0, name)
    end
    resolverfail("getaddrinfo", ipc.getaddrinfo("nonexistent.invalid", "80"))
    resolverfail("connect", ipc.connect("no-such-host.invalid:80"))
    -- a system failure keeps its positive errno
    local dir, cleanup = S.tmpdir()
    assert.same({ nil, "connect: " .. ipc.strerror(E.ENOENT), E.ENOENT }, { ipc.connect(dir .. "/none.sock") })
    cleanup()
  end)
end)
