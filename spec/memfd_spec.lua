-- Memory as a file (csrc/memfd.c): ipc.memfd, reads/writes/seeks, seals,
-- truncate/size; and channels sending big values as sealed memfds
-- (lua/unixipc/channel.lua), the receiver checking the seals and the size
-- before it trusts them.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno
local pack = string.pack

describe("ipc.memfd", function()
  it("reads, writes and seeks like any descriptor", function()
    local m = assert(ipc.memfd("notes"))
    assert.truthy(tostring(m):match("^memfd %(fd %d+%)$"))
    assert.equal("unixipc.memfd", getmetatable(m).__name)
    assert.is_true(S.cloexec(m))
    assert.equal("/memfd:notes (deleted)", ipc._openfds()[m:fileno()])
    assert.equal(11, m:write("hello world"))
    assert.equal(11, m:size())
    assert.equal(0, m:seek("set", 0))
    assert.equal("hello", m:read(5))
    assert.equal(6, m:seek("cur", 1))
    assert.equal("world", m:read(100))
    assert.same({ nil, "eof" }, { m:read(1) })
    assert.is_true(m:truncate(4096))
    assert.equal(4096, m:size())
    assert.is_true(m:truncate(5))
    m:seek("set", 0)
    assert.equal("hello", m:read(100))
    -- the same file through a dup and in a child
    local d = m:dup()
    assert.equal("unixipc.memfd", getmetatable(d).__name)
    local pid = S.child(function()
      d:seek("set", 0)
      d:write("HELLO")
    end)
    assert.equal(0, S.wait(pid))
    m:seek("set", 0)
    assert.equal("HELLO", m:read(5))
    d:close()
    m:close()
    assert.equal("memfd (closed)", tostring(m))
  end)

  it("takes seals when made with seal = true, and keeps them", function()
    local m = assert(ipc.memfd("sealed", { seal = true }))
    assert.same({}, m:seals())
    m:write("fixed")
    assert.is_true(m:seal("grow", "shrink"))
    assert.same({ "shrink", "grow" }, m:seals())
    m:seek("set", 0)
    assert.equal(5, m:write("FIXED")) -- in place: allowed
    assert.same({ nil, "write: Operation not permitted", E.EPERM }, { m:write("more") })
    assert.same({ nil, "ftruncate: Operation not permitted", E.EPERM }, { m:truncate(1) })
    assert.is_true(m:seal("write|seal"))
    assert.same({ "seal", "shrink", "grow", "write" }, m:seals())
    m:seek("set", 0)
    assert.same({ nil, "write: Operation not permitted", E.EPERM }, { m:write("x") })
    assert.same({ nil, "fcntl: Operation not permitted", E.EPERM }, { m:seal("exec") })
    assert.equal(ipc.F_SEAL_WRITE, 8)
    m:close()
    -- without seal = true the file is sealed against seals from the start
    m = assert(ipc.memfd("plain"))
    assert.same({ "seal" }, m:seals())
    assert.same({ nil, "fcntl: Operation not permitted", E.EPERM }, { m:seal("write") })
    m:close()
    -- a number works too
    m = assert(ipc.memfd("n", { seal = true }))
    assert.is_true(m:seal(ipc.F_SEAL_GROW | ipc.F_SEAL_SHRINK))
    assert.same({ "shrink", "grow" }, m:seals())
    m:close()
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.memfd() end)
    assert.has_error(function() ipc.memfd("a\0b") end, "bad argument #1 to 'memfd' (name contains a NUL byte)")
    assert.has_error(function() ipc.memfd(("x"):rep(250)) end,
      "bad argument #1 to 'memfd' (name must be at most 249 bytes, got 250)")
    assert.has_error(function() ipc.memfd("x", { seals = true }) end,
      "bad argument #2 to 'memfd' (unknown option 'seals')")
    assert.has_error(function() ipc.memfd("x", { seal = "yes" }) end,
      "bad argument #2 to 'memfd' (option 'seal' must be a boolean, got string)")
    local m = assert(ipc.memfd("x", { seal = true }))
    assert.has_error(function() m:seal() end, "bad argument #1 to 'seal' (seal name expected, got no value)")
    assert.has_error(function() m:seal("glow") end, "bad argument #1 to 'seal' (unknown seal 'glow')")
    assert.has_error(function() m:seal("write", "MSG_PEEK") end, "bad argument #2 to 'seal' (unknown seal 'MSG_PEEK')")
    assert.has_error(function() m:truncate(-1) end,
      "bad argument #1 to 'truncate' (size must be an integer from 0 to 9223372036854775807, got -1)")
    local r, w = assert(ipc.pipe())
    assert.has_error(function() m.seals(r) end, "bad argument #1 to 'seals' (unixipc memfd expected, got unixipc.fd)")
    assert.is_nil(r.seal)
    m:close()
    assert.has_error(function() m:seals() end, "attempt to use a closed memfd")
    assert.has_error(function() m:size() end, "attempt to use a closed memfd")
    r:close()
    w:close()
  end)

  it("ipc.retype and ipc.fdopen give a received descriptor its kind", function()
    local a, b = assert(ipc.socketpair())
    local m = assert(ipc.memfd("passed"))
    local e = assert(ipc.eventfd())
    local r, w = assert(ipc.pipe())
    assert(a:sendmsg { data = "x", fds = { m, e, r } })
    local _, fds = b:recvmsg()
    assert.equal("unixipc.fd", getmetatable(fds[1]).__name) -- recvmsg does not ask
    assert.same({ fds[1], "memfd" }, { ipc.retype(fds[1]) })
    assert.same({ fds[2], "eventfd" }, { ipc.retype(fds[2]) })
    assert.same({ fds[3], "descriptor" }, { ipc.retype(fds[3]) })
    assert.same({ a, "socket" }, { ipc.retype(a) })
    assert.equal("unixipc.memfd", getmetatable(fds[1]).__name)
    local n = fds[2]:dup()
    local fd = n:fileno()
    local o = ipc.fdopen(fd)
    assert.equal("unixipc.eventfd", getmetatable(o).__name)
    assert.has_error(function() ipc.retype(42) end)
    S.closeall(fds)
    S.closeall { a, b, m, e, r, w, o }
    n:close() -- o owned the same number: this close finds it closed
  end)
end)

-- the frame header: magic, descriptor count, body length
local function header(magic, nfds, len) return pack("<BBI4", magic, nfds, len) end

describe("channels and big values", function()
  it("a 64 MiB value travels through a sealed memfd", function()
    local a, b = assert(ipc.socketpair())
    local ca = ipc.channel(a, { maxsize = 65 << 20 })
    local big = string.rep("0123456789abcdef", 4 << 20) -- 64 MiB
    -- no reader yet: through the socket buffer this send could not finish
    assert.is_true(ca:settimeout(30))
    assert.is_true(ca:send(big))
    -- what went over the socket: a 6-byte header and one sealed memfd
    local data, fds = b:recvmsg { size = 64 }
    assert.equal(header(0xA6, 1, #big + 5), data)
    local m = ipc.retype(fds[1])
    assert.equal("unixipc.memfd", getmetatable(m).__name)
    assert.same({ "seal", "shrink", "grow", "write" }, m:seals())
    assert.equal(#big + 5, m:size())
    assert.equal(pack("<BI4", 5, #big), m:read(5))
    -- handed on to a channel reader as it came: the value comes out
    local c, d = assert(ipc.socketpair())
    assert(c:sendmsg { data = data, fds = { m } })
    m:close()
    local cd = ipc.channel(d, { maxsize = 65 << 20 })
    local v, vfds = cd:recv()
    assert.equal(#big, #v)
    assert.is_true(v == big)
    assert.same({}, vfds)
    S.closeall { ca, b, c, cd }
  end)

  it("between two processes, with descriptors alongside, both socket types", function()
    for _, kind in ipairs { "stream", "seqpacket" } do
      local a, b = assert(ipc.socketpair(kind))
      local value = { blob = string.rep("x", 3 << 20), n = 42, list = { 1, 2, 3 } }
      local pid = S.child(function()
        b:close()
        local ca = ipc.channel(a)
        local r, w = assert(ipc.pipe())
        assert(ca:send(value, { w }))
        assert(ca:send(string.rep("y", 2 << 20)))
        assert(ca:send("small"))
        r:close()
        w:close()
        ca:close()
      end)
      a:close()
      local cb = ipc.channel(b)
      local v, fds = cb:recv()
      assert.is_true(S.same(value, v))
      assert.equal(1, #fds)
      fds[1]:close()
      v = assert(cb:recv())
      assert.equal(2 * 2 ^ 20, #v)
      assert.equal("small", (cb:recv()))
      assert.same({ nil, "eof" }, { cb:recv() })
      assert.equal(0, S.wait(pid))
      cb:close()
    end
  end)

  it("memfd = false sends through the socket; the threshold is settable", function()
    local a, b = assert(ipc.socketpair())
    local ca = ipc.channel(a, { memfd = false })
    local blob = string.rep("z", 2 << 20)
    local pid = S.child(function() -- reads what ca sends, raw
      local raw, n = {}, 0
      while n < #blob + 11 do
        local s = assert(b:recv(65536))
        raw[#raw + 1] = s
        n = n + #s
      end
      local all = table.concat(raw)
      assert(all:sub(1, 6) == header(0xA5, 0, #blob + 5))
    end)
    assert.is_true(ca:send(blob))
    assert.equal(0, S.wait(pid))
    ca:close()
    b:close()
    a, b = assert(ipc.socketpair())
    ca = ipc.channel(a, { memfd = 16 })
    assert.is_true(ca:send(string.rep("s", 17))) -- above 16: by memfd
    assert.is_true(ca:send(string.rep("t", 16))) -- not above: through the socket
    assert.is_true(ca:send({ string.rep("u", 20) })) -- a table whose encoding is above 16
    local data, fds = b:recvmsg { size = 6 }
    assert.equal(header(0xA6, 1, 17 + 5), data)
    S.closeall(fds)
    data = b:recvmsg { size = 6 + 21 }
    assert.equal(header(0xA5, 0, 16 + 5) .. pack("<Bs4", 5, string.rep("t", 16)), data)
    data, fds = b:recvmsg { size = 6 }
    assert.equal(0xA6, data:byte(1))
    S.closeall(fds)
    ca:close()
    b:close()
    assert.has_error(function() ipc.channel(b, { memfd = -1 }) end,
      "bad argument #2 to 'channel' (option 'memfd' must be a size in bytes from 0 to 4294967295 or a boolean, got -1)")
    assert.has_error(function() ipc.channel(b, { memfd = "big" }) end)
  end)

  it("the receiver trusts a memfd only when sealed and of the announced size", function()
    local function try(make, pattern)
      local a, b = assert(ipc.socketpair())
      local cb = ipc.channel(b)
      local hdr, fds = make()
      assert(a:sendmsg { data = hdr, fds = fds })
      if fds then S.closeall(fds) end
      local v, msg, err = cb:recv()
      assert.is_nil(v)
      assert.matches(pattern, msg)
      assert.equal(E.EPROTO, err)
      assert.is_nil(cb.sock) -- a bad frame closes the channel
      a:close()
    end
    local body = pack("<Bs4", 5, "hello")
    try(function() -- not sealed
      local m = assert(ipc.memfd("x", { seal = true }))
      m:write(body)
      return header(0xA6, 1, #body), { m }
    end, "^channel: frame's memfd is not sealed against writes$")
    try(function() -- sealed against growing and shrinking only
      local m = assert(ipc.memfd("x", { seal = true }))
      m:write(body)
      m:seal("grow", "shrink")
      return header(0xA6, 1, #body), { m }
    end, "not sealed against writes")
    try(function() -- sealed, but not the size announced
      local m = assert(ipc.memfd("x", { seal = true }))
      m:write(body)
      m:seal("grow", "shrink", "write")
      return header(0xA6, 1, #body + 1), { m }
    end, "^channel: frame's memfd size differs from its header$")
    try(function() -- a pipe instead of a memfd
      local r, w = assert(ipc.pipe())
      w:write(body)
      return header(0xA6, 1, #body), { r, w }
    end, "announced 1 descriptors but 2 came")
    try(function()
      local r, w = assert(ipc.pipe())
      w:write(body)
      w:close()
      return header(0xA6, 1, #body), { r }
    end, "^channel: frame's memfd is not a memfd$")
    try(function() -- no descriptor at all
      return header(0xA6, 0, #body), nil
    end, "memfd frame announces 0 descriptors")
    -- a sealed memfd with a body that is not a string still decodes
    local a, b = assert(ipc.socketpair())
    local cb = ipc.channel(b)
    local m = assert(ipc.memfd("x", { seal = true }))
    local tbody = pack("<BI4", 6, 1) .. pack("<Bs4", 5, "k") .. pack("<Bj", 3, 99)
    m:write(tbody)
    m:seal("grow", "shrink", "write")
    assert(a:sendmsg { data = header(0xA6, 1, #tbody), fds = { m } })
    m:close()
    assert.same({ { k = 99 }, {} }, { cb:recv() })
    -- and the old frames still decode
    assert(a:send(header(0xA5, 0, #body) .. body))
    assert.same({ "hello", {} }, { cb:recv() })
    a:close()
    cb:close()
  end)

  it("maxsize applies to memfd frames too, before anything is read", function()
    local a, b = assert(ipc.socketpair())
    local ca = ipc.channel(a)
    local big = string.rep("m", 2 << 20)
    local ok, msg, err = ipc.channel(a, { maxsize = 1 << 20 }):send(big)
    assert.is_nil(ok)
    assert.equal(("channel: frame of %d bytes exceeds maxsize %d"):format(#big + 5, 2 ^ 20), msg)
    assert.equal(E.EMSGSIZE, err)
    assert.is_true(ca:send(big))
    local cb = ipc.channel(b, { maxsize = 1 << 20 })
    ok, msg, err = cb:recv()
    assert.is_nil(ok)
    assert.equal(("channel: frame of %d bytes exceeds maxsize %d"):format(#big + 5, 2 ^ 20), msg)
    assert.equal(E.EMSGSIZE, err)
    ca:close()
  end)
end)
