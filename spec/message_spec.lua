-- sendmsg / recvmsg / peercred / tofile: descriptor passing and credentials
-- against the real kernel, with second processes where it matters.
local ipc = require "unixipc"
local S = require "support"

local nfds, closeall = S.nfds, S.closeall

-- read a descriptor's target from /proc (what it refers to)
local function target(obj)
  return ipc._openfds()[obj:fileno()]
end

describe("sendmsg / recvmsg", function()
  it("carries data as a string or a gather list, and reports info", function()
    local a, b = ipc.socketpair()
    assert.equal(5, a:sendmsg{ data = "hello" })
    local data, fds, info = b:recvmsg()
    assert.equal("hello", data)
    assert.same({}, fds)
    assert.is_false(info.truncated)
    assert.is_false(info.ctruncated)
    assert.equal(0, info.flags)
    assert.is_nil(info.from)
    assert.is_nil(info.cred)
    assert.equal(9, a:sendmsg{ data = { "one", "", "two", "333" } })
    assert.equal("onetwo333", (b:recvmsg()))
    -- more pieces than fit on the C stack
    local parts = {}
    for i = 1, 100 do parts[i] = tostring(i % 10) end
    assert.equal(100, a:sendmsg{ data = parts })
    assert.equal(table.concat(parts), (b:recvmsg()))
    a:close()
    b:close()
  end)

  it("passes descriptors given as objects, io files and integers", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    local dir, cleanup = S.tmpdir()
    local f = assert(io.open(dir .. "/file", "w+"))
    f:write("from an io file")
    f:flush()
    assert.equal(1, a:sendmsg{ data = "x", fds = { r, w, f, w:fileno() } })
    local data, fds, info = b:recvmsg()
    assert.equal("x", data)
    assert.equal(4, #fds)
    assert.is_false(info.ctruncated)
    for _, o in ipairs(fds) do
      assert.matches("^descriptor %(", tostring(o))
      assert.is_true(S.cloexec(o))
    end
    assert.equal(target(r), target(fds[1]))
    assert.equal(target(w), target(fds[2]))
    assert.equal(target(w), target(fds[4]))
    assert.matches("pipe, fd", tostring(fds[1]))
    fds[2]:write("through the copy")
    assert.equal("through the copy", r:read(100))
    fds[3]:seek("set", 0)
    assert.equal("from an io file", fds[3]:read(100))
    closeall(fds)
    f:close()
    cleanup()
    r:close()
    w:close()
    a:close()
    b:close()
  end)

  it("returns sockets as socket objects that work as sockets", function()
    local a, b = ipc.socketpair()
    local x, y = ipc.socketpair("dgram")
    assert(a:sendmsg{ data = "s", fds = { x } })
    local _, fds = b:recvmsg()
    local s = fds[1]
    assert.matches("^socket %(unix dgram, fd %d+%)$", tostring(s))
    assert.is_function(s.sendmsg)
    assert.equal(4, s:send("ping"))
    assert.equal("ping", y:recv(10))
    assert(y:sendmsg{ data = "back", fds = { a } })
    local data, got = s:recvmsg()
    assert.equal("back", data)
    assert.matches("unix stream", tostring(got[1]))
    got[1]:send("via passed stream")
    assert.equal("via passed stream", b:recv(100))
    closeall(got)
    s:close()
    x:close()
    y:close()
    a:close()
    b:close()
  end)

  it("passes 253 descriptors in one message and refuses 254 without sending", function()
    local a, b = ipc.socketpair("seqpacket")
    local r, w = ipc.pipe()
    local list = {}
    for i = 1, 253 do list[i] = r end
    local before = nfds()
    assert.equal(3, a:sendmsg{ data = "max", fds = list })
    local data, fds, info = b:recvmsg()
    assert.equal("max", data)
    assert.equal(253, #fds)
    assert.is_false(info.ctruncated)
    assert.equal(before + 253, nfds())
    closeall(fds)
    assert.equal(before, nfds())
    list[254] = w
    local n, msg, err = a:sendmsg{ data = "over", fds = list }
    assert.is_nil(n)
    assert.matches("^sendmsg: too many descriptors", msg)
    assert.equal(ipc.errno.EINVAL, err)
    assert.equal(ipc.SCM_MAX_FD, 253)
    local d, m, e = b:recvmsg{ flags = "dontwait" }
    assert.is_nil(d)
    assert.equal(ipc.errno.EAGAIN, e, m)
    r:close()
    w:close()
    a:close()
    b:close()
  end)

  it("reports truncation with a small maxfds and leaks nothing", function()
    local a, b = ipc.socketpair("seqpacket")
    local r, w = ipc.pipe()
    local before = nfds()
    assert(a:sendmsg{ data = "five", fds = { r, w, r, w, r } })
    local data, fds, info = b:recvmsg{ maxfds = 2 }
    assert.equal("five", data)
    assert.equal(2, #fds)
    assert.is_true(info.ctruncated)
    assert.equal(before + 2, nfds())
    closeall(fds)
    assert.equal(before, nfds())
    -- maxfds = 0: all of them dropped by the kernel, reported
    assert(a:sendmsg{ data = "two", fds = { r, w } })
    data, fds, info = b:recvmsg{ maxfds = 0 }
    assert.equal("two", data)
    assert.same({}, fds)
    assert.is_true(info.ctruncated)
    assert.equal(before, nfds())
    -- data truncation on a record
    assert(a:sendmsg{ data = "0123456789", fds = { r } })
    data, fds, info = b:recvmsg{ size = 4 }
    assert.equal("0123", data)
    assert.is_true(info.truncated)
    assert.is_false(info.ctruncated)
    assert.equal(1, #fds)
    closeall(fds)
    -- with MSG_TRUNC the data is still cut at size
    assert(a:sendmsg{ data = "abcdef" })
    data, fds, info = b:recvmsg{ size = 2, flags = "trunc" }
    assert.equal("ab", data)
    assert.is_true(info.truncated)
    r:close()
    w:close()
    a:close()
    b:close()
  end)

  it("allows empty data with descriptors on seqpacket and datagram sockets", function()
    for _, kind in ipairs { "seqpacket", "dgram" } do
      local a, b = ipc.socketpair(kind)
      local r, w = ipc.pipe()
      assert.equal(0, a:sendmsg{ fds = { w } })
      local data, fds = b:recvmsg()
      assert.equal("", data)
      assert.equal(1, #fds)
      closeall(fds)
      r:close()
      w:close()
      a:close()
      b:close()
    end
  end)

  it("refuses descriptors without data on a stream socket (the kernel would drop them)", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    assert.error_matches(function() a:sendmsg{ fds = { r } } end,
      "needs at least one data byte to carry descriptors")
    assert.error_matches(function() a:sendmsg{ data = "", fds = { r } } end, "at least one data byte")
    assert.error_matches(function() a:sendmsg{ data = { "", "" }, cred = true } end, "at least one data byte")
    local d, _, e = b:recvmsg{ flags = "dontwait" }
    assert.is_nil(d)
    assert.equal(ipc.errno.EAGAIN, e)
    r:close()
    w:close()
    a:close()
    b:close()
  end)

  it("sends to an address and reports the sender (datagrams)", function()
    local name = ("unixipc-msg-%d"):format(ipc.getpid())
    local srv = ipc.socket("unix", "dgram")
    assert(srv:bind("@" .. name .. "-srv"))
    local cli = ipc.socket("unix", "dgram")
    assert(cli:bind("@" .. name .. "-cli"))
    local r, w = ipc.pipe()
    assert.equal(3, cli:sendmsg{ data = "dgm", fds = { r }, to = "@" .. name .. "-srv" })
    local data, fds, info = srv:recvmsg()
    assert.equal("dgm", data)
    assert.equal(1, #fds)
    assert.equal("unix", info.from.family)
    assert.equal(name .. "-cli", info.from.abstract)
    assert.equal("@" .. name .. "-cli", tostring(info.from))
    closeall(fds)
    -- reply to the reported address
    assert(srv:sendmsg{ data = "re", to = info.from })
    assert.equal("re", cli:recv(10))
    -- an unnamed sender
    local anon = ipc.socket("unix", "dgram")
    assert(anon:sendmsg{ data = "?", to = { family = "unix", abstract = name .. "-srv" } })
    data, fds, info = srv:recvmsg()
    assert.equal("?", data)
    assert.is_nil(info.from) -- the kernel gives no address for an unbound sender
    local n, msg = anon:sendmsg{ data = "x", to = "@" .. name .. "-nobody" }
    assert.is_nil(n)
    assert.matches("^sendmsg: ", msg)
    anon:close()
    r:close()
    w:close()
    cli:close()
    srv:close()
  end)

  it("returns eof, timeouts and EAGAIN like recv", function()
    local a, b = ipc.socketpair()
    b:settimeout(0.05)
    local d, m, e = b:recvmsg()
    assert.is_nil(d)
    assert.equal("timeout", m)
    assert.equal(ipc.errno.ETIMEDOUT, e)
    b:settimeout(nil)
    b:setnonblocking(true)
    d, m, e = b:recvmsg()
    assert.is_nil(d)
    assert.equal(ipc.errno.EAGAIN, e)
    assert.matches("^recvmsg: ", m)
    b:setnonblocking(false)
    a:close()
    d, m, e = b:recvmsg()
    assert.is_nil(d)
    assert.equal("eof", m)
    assert.is_nil(e)
    -- eof also with SO_PASSCRED on (the kernel adds credentials even then)
    local x, y = ipc.socketpair()
    y:setoption("passcred", true)
    x:close()
    assert.same({ nil, "eof" }, { y:recvmsg() })
    -- a full buffer: non-blocking sendmsg says EAGAIN, a timed one times out
    local p, q = ipc.socketpair("dgram")
    p:setnonblocking(true)
    local big = string.rep("z", 4096)
    local n, msg, err
    repeat n, msg, err = p:sendmsg{ data = big } until not n
    assert.equal(ipc.errno.EAGAIN, err, msg)
    p:setnonblocking(false)
    p:settimeout(0.02)
    n, msg, err = p:sendmsg{ data = big }
    assert.is_nil(n)
    assert.equal("timeout", msg)
    assert.equal(ipc.errno.ETIMEDOUT, err)
    -- flags: dontwait as a name
    n, msg, err = p:sendmsg{ data = big, flags = "dontwait" }
    assert.equal(ipc.errno.EAGAIN, err, msg)
    p:close()
    q:close()
    y:close()
    b:close()
  end)

  it("passes a writer to another process's pipe and gets one back (fork)", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    local pid = S.child(function()
      a:close()
      r:close()
      w:close()
      -- receive the writer, write through it, then send back a fresh pipe's reader
      local data, fds = assert(b:recvmsg())
      assert(data == "take this", data)
      assert(#fds == 1)
      assert(fds[1]:write("written by the child") == 20)
      fds[1]:close()
      local cr, cw = ipc.pipe()
      assert(cw:write("pipe made in the child"))
      cw:close()
      assert(b:sendmsg{ data = "yours", fds = { cr } })
      cr:close()
      b:close()
    end)
    b:close()
    assert(a:sendmsg{ data = "take this", fds = { w } })
    w:close()
    assert.equal("written by the child", r:read(100))
    local data, fds = a:recvmsg()
    assert.equal("yours", data)
    assert.equal("pipe made in the child", fds[1]:read(100))
    assert.equal(0, S.wait(pid))
    closeall(fds)
    r:close()
    a:close()
  end)

  it("hands a listening socket to another process, which accepts on it", function()
    local a, b = ipc.socketpair()
    local name = ("@unixipc-passlisten-%d"):format(ipc.getpid())
    local pid = S.child(function()
      a:close()
      local _, fds = assert(b:recvmsg())
      local srv = fds[1]
      assert(tostring(srv):match("^socket %(unix stream"), tostring(srv))
      srv:settimeout(5)
      local conn = assert(srv:accept())
      assert(conn:sendall("accepted in the child"))
      conn:close()
      srv:close()
      b:close()
    end)
    b:close()
    local srv = assert(ipc.listen(name))
    assert(a:sendmsg{ data = "L", fds = { srv } })
    srv:close() -- the child's copy keeps listening
    local c = assert(ipc.connect(name))
    assert.equal("accepted in the child", c:recv(100))
    assert.equal(0, S.wait(pid))
    c:close()
    a:close()
  end)

  it("survives 5000 pass/receive/close cycles with the descriptor count unchanged", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    collectgarbage()
    local before = nfds()
    for _ = 1, 5000 do
      assert(a:sendmsg{ data = "x", fds = { r } })
      local _, fds = b:recvmsg()
      fds[1]:close()
    end
    -- and without closing: the collector closes what it owns
    for _ = 1, 500 do
      assert(a:sendmsg{ data = "y", fds = { w, r } })
      assert(b:recvmsg())
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, nfds())
    r:close()
    w:close()
    a:close()
    b:close()
  end)

  it("stays exact when finalizers call recvmsg in the middle of a recvmsg", function()
    local a, b = ipc.socketpair("seqpacket")
    local c, d = ipc.socketpair("seqpacket")
    local r, w = ipc.pipe()
    collectgarbage()
    local before = nfds()
    local inner = 0
    local mt = { __gc = function()
      local data, fds = d:recvmsg{ flags = "dontwait" }
      if data then
        inner = inner + #fds
        for _, o in ipairs(fds) do o:close() end
      end
    end }
    local outer, sent = 0, 0
    collectgarbage("incremental", 1, 1000) -- collect (and finalize) as often as possible
    for _ = 1, 300 do
      if c:sendmsg{ data = "i", fds = { r, w }, flags = "dontwait" } then sent = sent + 1 end
      for _ = 1, 3 do setmetatable({}, mt) end
      assert(a:sendmsg{ data = "o", fds = { r, w, r } })
      local _, fds = b:recvmsg()
      outer = outer + #fds
      for _, o in ipairs(fds) do o:close() end
    end
    collectgarbage("incremental", 200, 100)
    collectgarbage()
    collectgarbage()
    for _ = 1, 300 do -- whatever the finalizers did not take
      local data, fds = d:recvmsg{ flags = "dontwait" }
      if not data then break end
      inner = inner + #fds
      closeall(fds)
    end
    assert.equal(900, outer)
    assert.equal(2 * sent, inner)
    assert.is_true(sent > 0)
    assert.equal(before, nfds())
    r:close()
    w:close()
    a:close()
    b:close()
    c:close()
    d:close()
  end)

  it("gives received descriptors blocking objects, whatever O_NONBLOCK the sender left", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    r:setnonblocking(true)
    assert.is_true(S.nonblocking(r))
    assert(a:sendmsg{ data = "r", fds = { r } })
    local _, fds = b:recvmsg()
    local got = fds[1]
    assert.is_true(S.nonblocking(got)) -- the open file description is shared
    local pid = S.child(function()
      a:close(); b:close(); r:close(); got:close()
      ipc.sleep(0.05)
      assert(w:write("late"))
      w:close()
    end)
    w:close()
    assert.equal("late", got:read(10)) -- waited for the data, no EAGAIN
    assert.equal(0, S.wait(pid))
    got:settimeout(0.02)
    assert.same({ nil, "eof" }, { got:read(10) })
    got:settimeout(nil)
    assert.is_true(got:setnonblocking(true))
    assert.is_true(got:setnonblocking(false))
    assert.is_false(S.nonblocking(got)) -- the first change really clears the flag
    closeall(fds)
    r:close()
    a:close()
    b:close()
  end)

  it("hands a received descriptor to the io library with tofile", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    local dir, cleanup = S.tmpdir()
    local f = assert(ipc.open(dir .. "/data", "w+"))
    assert(f:write("line one\nline two\n"))
    f:seek("set", 0)
    assert(a:sendmsg{ data = "f", fds = { f, w, r } })
    f:close()
    local _, fds = b:recvmsg()
    local file = fds[1]:tofile("r")
    assert.equal("line one", file:read("l"))
    assert.equal("line two", file:read("l"))
    assert.equal("closed", tostring(fds[1]):match("closed"))
    assert.error_matches(function() fds[1]:fileno() end, "closed descriptor")
    assert.is_true(file:close())
    -- a pipe end, made non-blocking by its sender: the io file reads blocking
    r:setnonblocking(true)
    local out = fds[2]:tofile("w")
    local inp = fds[3]:tofile("r")
    out:write("through stdio\n")
    out:close()
    w:close()
    assert.equal("through stdio", inp:read("l"))
    assert.is_nil(inp:read("l"))
    inp:close()
    -- bad modes raise and leave the object usable
    local _, more = (function()
      assert(a:sendmsg{ data = "g", fds = { r } })
      return b:recvmsg()
    end)()
    assert.error_matches(function() more[1]:tofile("rw") end, "invalid mode 'rw'")
    assert.error_matches(function() more[1]:tofile("") end, "invalid mode")
    assert.error_matches(function() more[1]:tofile(42) end, "invalid mode")
    assert.matches("fd %d+", tostring(more[1]))
    more[1]:close()
    assert.error_matches(function() more[1]:tofile("r") end, "closed descriptor")
    r:close()
    cleanup()
    a:close()
    b:close()
  end)

  it("rejects bad arguments", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    local sendmsg, recvmsg, peercred = a.sendmsg, a.recvmsg, a.peercred
    assert.error_matches(function() sendmsg(a) end, "table expected")
    assert.error_matches(function() sendmsg(a, "x") end, "table expected")
    assert.error_matches(function() sendmsg(r, { data = "x" }) end, "unixipc socket expected")
    assert.error_matches(function() sendmsg(42, { data = "x" }) end, "unixipc socket expected")
    assert.error_matches(function() a:sendmsg{ data = "x", size = 1 } end,
      "bad argument #1 to 'sendmsg' %(unknown option 'size'%)")
    assert.error_matches(function() a:sendmsg{ "x" } end, "bad argument #1 to 'sendmsg' %(option names must be strings, got number%)")
    assert.error_matches(function() a:sendmsg{ data = 42 } end,
      "data must be a string or a list of strings, got number")
    assert.error_matches(function() a:sendmsg{ data = { "a", 1 } } end, "data%[2%] must be a string")
    assert.error_matches(function() a:sendmsg{ data = "x", fds = r } end, "fds must be a list of descriptors, got userdata")
    assert.error_matches(function() a:sendmsg{ data = "x", fds = { "3" } } end,
      "fds%[1%]: descriptor expected %(unixipc object, io file, integer or object with getfd/fileno%), got string%)")
    assert.error_matches(function() a:sendmsg{ data = "x", fds = { -1 } } end,
      "fds%[1%]: descriptor must be an integer from 0 to 2147483647, got %-1%)")
    assert.error_matches(function() a:sendmsg{ data = "x", fds = { 1.5 } } end,
      "fds%[1%]: descriptor must be an integer from 0 to 2147483647, got 1%.5%)")
    assert.error_matches(function() a:sendmsg{ data = "x", fds = { r, {} } } end,
      "bad argument #1 to 'sendmsg' %(fds%[2%]: descriptor expected %(unixipc object, io file, integer or object with getfd/fileno%), got a table with neither%)")
    local closed, closedw = ipc.pipe()
    closed:close()
    closedw:close()
    assert.error_matches(function() a:sendmsg{ data = "x", fds = { r, closed } } end,
      "fds%[2%]: attempt to use a closed descriptor")
    local cf = io.tmpfile()
    cf:close()
    assert.error_matches(function() a:sendmsg{ data = "x", fds = { cf } } end, "fds%[1%]: attempt to use a closed file")
    assert.error_matches(function() a:sendmsg{ data = "x", cred = "me" } end, "cred must be true or a")
    assert.error_matches(function() a:sendmsg{ data = "x", cred = { pid = "1" } } end,
      "cred%.pid must be an integer from 0 to 2147483647, got string")
    -- a pid is a pid_t: 2^31 and up would become a negative pid, not be refused
    assert.error_matches(function() a:sendmsg{ data = "x", cred = { pid = 4294967295 } } end,
      "bad argument #1 to 'sendmsg' %(cred%.pid must be an integer from 0 to 2147483647, got 4294967295%)")
    assert.error_matches(function() a:sendmsg{ data = "x", cred = { uid = -1 } } end, "cred%.uid must be an integer from 0 to 4294967295, got %-1")
    assert.error_matches(function() a:sendmsg{ data = "x", flags = "bogus" } end, "bad argument #1 to 'sendmsg' %(unknown flag 'bogus'%)")
    assert.error_matches(function() a:sendmsg{ data = "x", flags = 1.5 } end, "flag must be an integer from %-2147483648 to 2147483647, got 1%.5")
    assert.error_matches(function() a:sendmsg{ data = "x", flags = {} } end, "flag must be names or an integer, got table")
    assert.error_matches(function() a:sendmsg{ data = "x", to = 42 } end, "bad argument #1 to 'sendmsg' %(address expected %(string or table%), got number%)")
    assert.error_matches(function() a:sendmsg{ data = "x", to = "nohost" } end, "bad argument #1 to 'sendmsg' %(invalid address")
    assert.error_matches(function() recvmsg(a, "x") end,
      "bad argument #2 to 'recvmsg' %(options must be a table, got string%)")
    assert.error_matches(function() a:recvmsg{ size = -1 } end, "bad argument #1 to 'recvmsg' %(option 'size' must be an integer from 0 to 9223372036854775807, got %-1%)")
    assert.error_matches(function() a:recvmsg{ size = 1.5 } end, "option 'size' must be an integer from 0 to 9223372036854775807, got 1%.5")
    assert.error_matches(function() a:recvmsg{ maxfds = -2 } end, "option 'maxfds' must be an integer from 0 to 9223372036854775807, got %-2")
    assert.error_matches(function() a:recvmsg{ maxfds = "1" } end, "option 'maxfds' must be an integer from 0 to 9223372036854775807, got string")
    assert.error_matches(function() a:recvmsg{ flags = "nope" } end, "bad argument #1 to 'recvmsg' %(unknown flag 'nope'%)")
    assert.error_matches(function() a:recvmsg{ timeout = 1 } end, "bad argument #1 to 'recvmsg' %(unknown option 'timeout'%)")
    -- flags of another family are not message flags
    assert.error_matches(function() a:sendmsg{ data = "x", flags = "WNOHANG" } end,
      "bad argument #1 to 'sendmsg' %(unknown flag 'WNOHANG'%)")
    assert.error_matches(function() a:recvmsg{ flags = "LOCK_NB" } end,
      "bad argument #1 to 'recvmsg' %(unknown flag 'LOCK_NB'%)")
    assert.error_matches(function() peercred(r) end, "unixipc socket expected")
    -- nothing of the above was sent
    local d, _, e = b:recvmsg{ flags = "dontwait" }
    assert.is_nil(d)
    assert.equal(ipc.errno.EAGAIN, e)
    a:close()
    assert.error_matches(function() a:sendmsg{ data = "x" } end, "closed socket")
    assert.error_matches(function() a:recvmsg() end, "closed socket")
    assert.error_matches(function() a:peercred() end, "closed socket")
    r:close()
    w:close()
    b:close()
  end)
end)

describe("credentials", function()
  it("peercred gives the pid, uid and gid of the peer process", function()
    local a, b = ipc.socketpair()
    local me = b:peercred()
    assert.equal(ipc.getpid(), me.pid)
    assert.equal("integer", math.type(me.uid))
    assert.equal("integer", math.type(me.gid))
    a:close()
    b:close()
    local name = ("@unixipc-cred-%d"):format(ipc.getpid())
    local srv = assert(ipc.listen(name))
    local pid = S.child(function()
      srv:close()
      local c = assert(ipc.connect(name))
      assert(c:recv(1))
      c:close()
    end)
    local conn = assert(srv:accept())
    local cred = conn:peercred()
    assert.equal(pid, cred.pid)
    assert.equal(me.uid, cred.uid)
    conn:send("k")
    assert.equal(0, S.wait(pid))
    conn:close()
    srv:close()
    -- no unix peer: unconnected, or not a unix socket
    for _, s in ipairs { ipc.socket("inet", "stream"), ipc.socket("unix", "stream") } do
      local ok, msg, err = s:peercred()
      assert.is_nil(ok)
      assert.equal("peercred: no peer credentials", msg)
      assert.equal(ipc.errno.ENOTCONN, err)
      s:close()
    end
  end)

  it("sends SCM_CREDENTIALS and receives them with passcred", function()
    local a, b = ipc.socketpair("seqpacket") -- a stream would glue equal-credential messages
    assert.is_true(b:setoption("passcred", true))
    assert.is_true(b:getoption("passcred"))
    local pid = S.child(function()
      b:close()
      assert(a:sendmsg{ data = "c1", cred = true })
      assert(a:sendmsg{ data = "c2", cred = { pid = ipc.getpid() } })
      assert(a:sendmsg{ data = "c3" }) -- the kernel fills them in anyway
      a:close()
    end)
    a:close()
    local me = b:peercred()
    for _, want in ipairs { "c1", "c2", "c3" } do
      local data, fds, info = b:recvmsg()
      assert.equal(want, data)
      assert.same({}, fds)
      assert.same({ pid = pid, uid = me.uid, gid = me.gid }, info.cred)
    end
    assert.equal(0, S.wait(pid))
    b:close()
  end)

  it("lets only the privileged claim another pid", function()
    local a, b = ipc.socketpair("dgram")
    b:setoption("passcred", true)
    local n, msg, err = a:sendmsg{ data = "x", cred = { pid = 1 } }
    if n then -- root (CAP_SYS_ADMIN) may claim any live pid
      local _, _, info = b:recvmsg()
      assert.equal(1, info.cred.pid)
    else
      assert.matches("^sendmsg: ", msg)
      assert.equal(ipc.errno.EPERM, err)
    end
    a:close()
    b:close()
  end)
end)

describe("python interop", function()
  it("exchanges descriptors with socket.send_fds / recv_fds", function()
    if not S.have("python3") or
      os.execute("python3 -c 'import socket, sys; socket.send_fds; sys.exit(0)' 2>/dev/null") ~= true then
      pending("no python3 with socket.send_fds (3.9+): interop not tested")
      return
    end
    local name = ("unixipc-py-%d"):format(ipc.getpid())
    local srv = assert(ipc.listen("@" .. name))
    local py = ([[
import os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("\0%s")
msg, fds, flags, addr = socket.recv_fds(s, 100, 10)
os.write(fds[0], b"python wrote " + msg)
for fd in fds: os.close(fd)
r, w = os.pipe()
os.write(w, b"pipe from python")
os.close(w)
socket.send_fds(s, [b"two"], [r, r])
os.close(r)
s.recv(1)
print("python done", len(fds))
]]):format(name)
    local proc = io.popen("python3 -c " .. S.quote(py), "r")
    srv:settimeout(5)
    local conn = assert(srv:accept())
    conn:settimeout(5)
    local r, w = ipc.pipe()
    assert(conn:sendmsg{ data = "hi", fds = { w, r } })
    w:close()
    assert.equal("python wrote hi", r:read(100))
    local data, fds = assert(conn:recvmsg())
    assert.equal("two", data)
    assert.equal(2, #fds)
    assert.equal("pipe from python", fds[1]:read(100))
    closeall(fds)
    conn:send("!")
    assert.equal("python done 2", proc:read("l"))
    assert.is_true(proc:close())
    conn:close()
    r:close()
    srv:close()
  end)
end)

describe("recvmsg on seqpacket (review fix)", function()
  it("returns an empty record as \"\" and the end of stream as eof", function()
    local a, b = ipc.socketpair("seqpacket")
    a:sendmsg{ data = "" }
    a:sendmsg{ data = "x" }
    local data, fds = b:recvmsg()
    assert.equal("", data)
    assert.same({}, fds)
    assert.equal("x", (b:recvmsg()))
    a:close()
    assert.same({ nil, "eof" }, { b:recvmsg() })
    b:close()
  end)

  it("reads cred and to before taking data: metamethods cannot free what is sent", function()
    local a, b = ipc.socketpair("dgram")
    local data = { string.rep("A", 1000) .. tostring(os.time()) }
    local want = data[1]
    local cred = setmetatable({}, { __index = function()
      data[1] = nil
      collectgarbage()
      collectgarbage()
    end })
    assert.is_true(a:setoption("passcred", true))
    local n = a:sendmsg{ data = data, cred = cred }
    -- data[1] was dropped by the metamethod before the data was read: nothing
    -- of it is sent (the list is empty by then), and nothing freed is touched
    assert.equal(0, n)
    assert.equal("", (b:recvmsg()))
    assert.is_string(want)
    a:close()
    b:close()
  end)
end)

describe("the received-descriptor guard (review fix)", function()
  -- recvmsg keeps a shared guard in an upvalue; the debug library can reach
  -- it, and neither its __gc nor recvmsg may then read a foreign userdata
  it("ignores what is not a guard", function()
    local recvmsg = ipc._methods.socket.recvmsg
    local n, name, guard = 0, nil, nil
    repeat
      n = n + 1
      name, guard = debug.getupvalue(recvmsg, n)
    until name == nil or (type(guard) == "userdata" and debug.getmetatable(guard)
      and debug.getmetatable(guard).__gc)
    assert.is_not_nil(name)
    local gc = debug.getmetatable(guard).__gc
    local path = os.tmpname()
    local f <close> = assert(io.open(path, "w"))
    os.remove(path)
    gc(f) -- not a guard: nothing is read or closed
    assert.is_true(io.type(f) == "file")
    assert(f:write("still open"))
    -- a foreign value in the guard's place: recvmsg makes its own guard
    debug.setupvalue(recvmsg, n, f)
    local a, b = assert(ipc.socketpair())
    local ok, err = pcall(function()
      assert(a:sendmsg { data = "x", fds = { a } })
      local data, fds = assert(b:recvmsg())
      assert.equal("x", data)
      fds[1]:close()
    end)
    debug.setupvalue(recvmsg, n, guard)
    a:close()
    b:close()
    assert(ok, err)
  end)
end)
