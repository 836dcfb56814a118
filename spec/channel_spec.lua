-- ipc.channel: framed Lua values and descriptors over stream and seqpacket
-- sockets, in one process and across fork.
local ipc = require "unixipc"
local S = require "support"

local pack = string.pack

local function frame(nfds, body, len)
  return pack("<BBI4", 0xA5, nfds, len or #body) .. body
end

local nfds, closeall = S.nfds, S.closeall

local same = S.same

local VALUES = {
  { "nil" }, { true }, { false },
  { 0 }, { 1 }, { -1 }, { math.maxinteger }, { math.mininteger }, { 2 ^ 53 },
  { 0.5 }, { -0.0 }, { 1 / 0 }, { -1 / 0 }, { 0 / 0 }, { math.pi }, { 1e-310 },
  { "" }, { "plain" }, { "\0binary\255\0" }, { string.rep("long ", 1000) }, { string.rep("\0big", 10000) },
  { {} }, { { 1, 2, 3 } }, { { a = 1, [2] = "two", [1.5] = false, [true] = { nested = { deeper = {} } } } },
  { { [math.maxinteger] = math.mininteger, ["\0"] = "\0", list = { "x", { "y", { "z" } } } } },
}

local function value(v) if v[1] == "nil" then return nil end return v[1] end

describe("channel", function()
  for _, kind in ipairs { "stream", "seqpacket" } do
    it("round-trips every value kind over " .. kind, function()
      local a, b = ipc.socketpair(kind)
      local ca, cb = ipc.channel(a), ipc.channel(b)
      for _, v in ipairs(VALUES) do
        assert.is_true(ca:send(value(v)))
        local got, fds = cb:recv()
        assert.same({}, fds)
        assert.is_true(same(value(v), got), "value " .. tostring(value(v)))
      end
      -- integers stay integers, floats stay floats
      ca:send({ 3, 3.0 })
      local t = cb:recv()
      assert.equal("integer", math.type(t[1]))
      assert.equal("float", math.type(t[2]))
      -- shared (acyclic) subtables are copied, not refused
      local shared = { "s" }
      ca:send({ shared, shared, { shared } })
      t = cb:recv()
      assert.same({ { "s" }, { "s" }, { { "s" } } }, t)
      ca:close()
      cb:close()
    end)

    it("carries a frame's descriptors with it (" .. kind .. ")", function()
      local a, b = ipc.socketpair(kind)
      local ca, cb = ipc.channel(a), ipc.channel(b)
      local r, w = ipc.pipe()
      assert(ca:send("two", { r, w }))
      assert(ca:send("none"))
      assert(ca:send(nil, { w }))
      local big = string.rep("b", 40000) -- header and body gathered by sendmsg
      assert(ca:send(big, { r }))
      local v, fds = cb:recv()
      assert.equal("two", v)
      assert.equal(2, #fds)
      fds[2]:write("pipe")
      assert.equal("pipe", fds[1]:read(10))
      closeall(fds)
      v, fds = cb:recv()
      assert.equal("none", v)
      assert.same({}, fds)
      v, fds = cb:recv()
      assert.is_nil(v)
      assert.equal(1, #fds)
      assert.matches("pipe, fd", tostring(fds[1]))
      closeall(fds)
      v, fds = cb:recv()
      assert.equal(big, v)
      assert.equal(1, #fds)
      closeall(fds)
      -- more than a kernel message can carry: refused, nothing sent
      local many = {}
      for i = 1, 254 do many[i] = r end
      local ok, msg, err = ca:send("x", many)
      assert.is_nil(ok)
      assert.matches("too many descriptors", msg)
      assert.equal(ipc.errno.EINVAL, err)
      local d, _, e = b:recvmsg{ flags = "dontwait" }
      assert.is_nil(d)
      assert.equal(ipc.errno.EAGAIN, e)
      many[254] = nil
      assert(ca:send("max", many))
      v, fds = cb:recv()
      assert.equal("max", v)
      assert.equal(253, #fds)
      closeall(fds)
      r:close()
      w:close()
      ca:close()
      cb:close()
    end)

    it("echoes large values and descriptors through another process (" .. kind .. ")", function()
      local a, b = ipc.socketpair(kind)
      local pid = S.child(function()
        a:close()
        local ch = ipc.channel(b)
        while true do
          local v, fds = ch:recv()
          if v == "stop" then break end
          assert(type(fds) == "table", fds)
          if #fds > 0 then assert(fds[1]:write("child saw the pipe")) end
          assert(ch:send(v, fds))
          closeall(fds)
        end
        ch:close()
      end)
      b:close()
      local ch = ipc.channel(a)
      local big = string.rep("0123456789abcdef", 65536) -- 1 MiB
      local tbl = {}
      for i = 1, 10000 do tbl[i] = { i, tostring(i), i + 0.5 } end
      local r, w = ipc.pipe()
      for _, v in ipairs { big, tbl, "small" } do
        assert(ch:send(v, { w }))
        local got, fds = ch:recv()
        assert.is_true(same(v, got))
        assert.equal(1, #fds)
        assert.equal("child saw the pipe", r:read(100))
        closeall(fds)
      end
      assert(ch:send("stop"))
      assert.same({ nil, "eof" }, { ch:recv() })
      assert.equal(0, S.wait(pid))
      ch:close()
      r:close()
      w:close()
    end)
  end

  it("is the channel ipc.spawn hands to parent and child", function()
    local r, w = ipc.pipe()
    local p = assert(ipc.spawn(function(chan, greeting)
      local v, fds = chan:recv()
      assert(fds[1]:write(greeting .. " " .. v.name))
      fds[1]:close()
      local cr, cw = ipc.pipe()
      cw:write("made by the child")
      cw:close()
      assert(chan:send({ done = true, n = 3.5 }, { cr }))
      cr:close()
    end, "hello"))
    assert.matches("^channel %(stream", tostring(p.chan))
    assert(p.chan:send({ name = "child" }, { w }))
    w:close()
    local v, fds = p.chan:recv()
    assert.same({ done = true, n = 3.5 }, v)
    assert.equal("made by the child", fds[1]:read(100))
    assert.equal("hello child", r:read(100))
    closeall(fds)
    assert.same({ true, "exit", 0 }, { p:wait() })
    p.chan:close()
    r:close()
  end)

  it("raises for values it cannot send, and sends nothing", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(a)
    local cyc = { 1 }
    cyc[2] = { cyc }
    local deep = {}
    local t = deep
    for _ = 1, 250 do t[1] = {}; t = t[1] end
    local cases = {
      { print, "cannot send a function" },
      { coroutine.create(print), "cannot send a thread" },
      { io.stdout, "cannot send a userdata" },
      { a, "cannot send a userdata" },
      { { ok = 1, bad = { print } }, "cannot send a function" },
      { { [print] = 1 }, "cannot send a function" },
      { cyc, "cycle" },
      { deep, "nested deeper than" },
    }
    for _, c in ipairs(cases) do
      assert.error_matches(function() ch:send(c[1]) end, "bad argument #1 to 'send' %(.*" .. c[2])
    end
    -- raised at the caller of send, however deep the value was
    for _, v in ipairs { print, { { { print } } }, cyc } do
      local ok, err = pcall(function() ch:send(v) end)
      assert.is_false(ok)
      assert.matches("^[^:]*channel_spec.lua:%d+: bad argument #1 to 'send'", err)
    end
    local r, w = ipc.pipe()
    assert.error_matches(function() ch:send("x", r) end, "fds must be a list")
    assert.error_matches(function() ch:send("x", { "nope" }) end, "fds%[1%]")
    r:close()
    assert.error_matches(function() ch:send("x", { w, r }) end, "closed descriptor")
    w:close()
    local d, _, e = b:recvmsg{ flags = "dontwait" }
    assert.is_nil(d)
    assert.equal(ipc.errno.EAGAIN, e)
    -- the channel still works
    assert(ch:send("fine"))
    assert.equal("fine", ipc.channel(b):recv())
    ch:close()
    b:close()
  end)

  it("refuses to send a frame over its maxsize", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(a, { maxsize = 16 })
    local ok, msg, err = ch:send(string.rep("x", 100))
    assert.is_nil(ok)
    assert.matches("exceeds maxsize 16", msg)
    assert.equal(ipc.errno.EMSGSIZE, err)
    assert(ch:send("tiny"))
    assert.equal("tiny", ipc.channel(b):recv())
    ch:close()
    b:close()
  end)

  describe("receiving a bad frame returns nil, message and closes the channel", function()
    local function bad(kind, raw, pattern, opts, fds)
      local a, b = ipc.socketpair(kind)
      local ch = ipc.channel(b, opts)
      local before = nfds()
      if fds then
        assert(a:sendmsg{ data = raw, fds = fds })
      else
        assert(a:sendall(raw))
      end
      a:shutdown("w")
      local v, msg, err = ch:recv()
      assert.is_nil(v)
      assert.matches(pattern, msg)
      assert.equal("integer", math.type(err))
      assert.is_nil(ch.sock)
      assert.equal("channel (closed)", tostring(ch))
      assert.error_matches(function() ch:recv() end, "closed channel")
      assert.error_matches(function() ch:send(1) end, "closed channel")
      assert.is_true(ch:close())
      assert.equal(before - 1, nfds()) -- b closed, nothing received left open
      a:close()
      return err
    end
    local str = pack("<Bs4", 5, "hi")

    it("bad magic", function()
      bad("stream", "\0\0\0\0\0\0hello", "malformed frame %(bad header%)")
    end)
    it("oversized (refused from the header, before any body arrives)", function()
      local err = bad("stream", pack("<BBI4", 0xA5, 0, 1000001), "frame of 1000001 bytes exceeds maxsize 1000000",
        { maxsize = 1000000 })
      assert.equal(ipc.errno.EMSGSIZE, err)
      bad("stream", pack("<BBI4", 0xA5, 0, 0xffffffff), "exceeds maxsize 67108864")
    end)
    it("cut short by the end of the stream", function()
      bad("stream", frame(0, str):sub(1, 8), "end of stream in the middle of a frame")
      bad("stream", frame(0, str):sub(1, 3), "end of stream in the middle of a frame")
    end)
    it("unknown tag, trailing bytes, bad counts and keys", function()
      bad("stream", frame(0, "\9"), "unknown value tag 9")
      bad("stream", frame(0, str .. "\0"), "trailing bytes")
      bad("stream", frame(0, pack("<Bs4", 5, "hi"):sub(1, 4)), "malformed frame")
      bad("stream", frame(0, pack("<BI4", 6, 1000)), "table count beyond the frame")
      bad("stream", frame(0, pack("<BI4", 6, 1) .. "\0\2"), "invalid table key")
      bad("stream", frame(0, pack("<BI4", 6, 1) .. "\2\0"), "invalid table entry")
      bad("stream", frame(0, pack("<BI4", 6, 2) .. "\2\2\2\1"), "invalid table entry")
      bad("stream", frame(0, pack("<BI4Bd", 6, 1, 4, 0 / 0) .. "\2"), "invalid table key")
      bad("stream", frame(0, ""), "value cut short")
      local deep = string.rep(pack("<BI4", 6, 1) .. "\2", 300) .. "\2" .. string.rep("", 0)
      bad("stream", frame(0, deep), "nested too deeply")
    end)
    it("descriptors that do not match the header", function()
      local r, w = ipc.pipe()
      bad("stream", frame(0, str), "announced 0 descriptors but 1 came", nil, { r })
      bad("stream", frame(2, str), "announced 2 descriptors but 1 came", nil, { r })
      bad("seqpacket", frame(1, str), "announced 1 descriptors but 2 came", nil, { r, w })
      bad("stream", frame(2, str), "announces 2 descriptors, at most 1", { maxfds = 1 })
      bad("stream", frame(2, str), "descriptors truncated", { maxfds = 1 }, { r, w })
      bad("seqpacket", frame(0, str), "descriptors truncated", { maxfds = 1 }, { r, w })
      r:close()
      w:close()
    end)
    it("a seqpacket record longer than its frame", function()
      bad("seqpacket", frame(0, str) .. "extra", "record longer than its frame")
    end)
  end)

  it("keeps a partial frame across a timeout", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b)
    local r, w = ipc.pipe()
    local raw = frame(1, pack("<Bs4", 5, "patience"))
    assert(a:sendmsg{ data = raw:sub(1, 3), fds = { r } })
    assert.is_true(ch:settimeout(0.05))
    local v, msg, err = ch:recv()
    assert.is_nil(v)
    assert.equal("timeout", msg)
    assert.equal(ipc.errno.ETIMEDOUT, err)
    a:send(raw:sub(4, 9))
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { ch:recv() })
    a:send(raw:sub(10))
    local fds
    v, fds = ch:recv()
    assert.equal("patience", v)
    assert.equal(1, #fds)
    closeall(fds)
    -- a clean end of stream leaves the channel open
    a:close()
    assert.same({ nil, "eof" }, { ch:recv() })
    assert.is_not_nil(ch.sock)
    ch:close()
    r:close()
    w:close()
  end)

  it("keeps a frame whose body comes after its header", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b)
    local r, w = ipc.pipe()
    local raw = frame(1, pack("<Bs4", 5, "later"))
    assert(a:sendmsg{ data = raw:sub(1, 6), fds = { r } }) -- the header alone
    assert.is_true(ch:settimeout(0.05))
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { ch:recv() })
    a:send(raw:sub(7, 9))
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, { ch:recv() })
    a:send(raw:sub(10))
    local v, fds = ch:recv()
    assert.equal("later", v)
    assert.equal(1, #fds)
    closeall(fds)
    -- a header, then the end of the stream
    a:send(raw:sub(1, 6))
    a:close()
    local v2, msg, err = ch:recv()
    assert.is_nil(v2)
    assert.equal("channel: end of stream in the middle of a frame", msg)
    assert.equal(ipc.errno.EPROTO, err)
    assert.is_nil(ch.sock)
    ch:close()
    r:close()
    w:close()
  end)

  it("sends a table again after an encoding of it raised", function()
    local a, b = ipc.socketpair()
    local ca, cb = ipc.channel(a), ipc.channel(b)
    local t = { { 1 }, { print } }
    assert.error_matches(function() ca:send(t) end, "cannot send a function")
    t[2] = "fine now" -- t was being encoded when it raised: no cycle now
    assert(ca:send(t))
    assert.same({ { 1 }, "fine now" }, (cb:recv()))
    ca:close()
    cb:close()
  end)

  it("round-trips values beyond the encoder's caches and tables of every small size", function()
    local a, b = ipc.socketpair()
    local ca, cb = ipc.channel(a), ipc.channel(b)
    local v = { sizes = {}, keyed = {} }
    for i = 1, 5000 do v["key" .. i] = i * 37 - 100000 end -- more strings and integers than cached
    for n = 0, 20 do
      local arr, rec = {}, {}
      for i = 1, n do arr[i], rec["f" .. i] = i + 0.5, i % 2 == 0 end
      v.sizes[n + 1], v.keyed[n + 1] = arr, rec
    end
    v.sparse = { [1] = "a", [100] = "b", [-3] = "c", [2 ^ 40] = 1.0, x = 3 }
    v.floats = { 1.0, -0.0, 2 ^ 63, 1e300, -3.0, 4095.0, -1024.0 }
    v.ints = { 1, 0, -3, 4095, -1024, 4096, -1025, math.maxinteger, math.mininteger }
    for _ = 1, 2 do -- twice: the second time from the caches
      assert(ca:send(v))
      local got = cb:recv()
      assert.is_true(same(v, got))
      for i = 1, #v.floats do assert.equal("float", math.type(got.floats[i])) end
      for i = 1, #v.ints do assert.equal("integer", math.type(got.ints[i])) end
      assert.equal("integer", math.type(got.key1))
    end
    ca:close()
    cb:close()
  end)

  it("finishes a started frame, or closes the channel when a timeout cuts it", function()
    local big = string.rep("z", 1 << 20)
    -- a timeout in the middle of a frame: the frame cannot be taken back
    local a, b = ipc.socketpair()
    local ch = ipc.channel(a)
    ch:settimeout(0.05)
    local ok, msg, err = ch:send(big)
    assert.is_nil(ok)
    assert.equal("channel: frame cut short: timeout", msg)
    assert.equal(ipc.errno.ETIMEDOUT, err)
    assert.is_nil(ch.sock)
    b:close()
    -- non-blocking: the rest of a started frame waits for the reader
    a, b = ipc.socketpair()
    local pid = S.child(function()
      a:close()
      ipc.sleep(0.05)
      local cb = ipc.channel(b)
      local v = assert(cb:recv())
      assert(v == big)
      cb:close()
    end)
    b:close()
    ch = ipc.channel(a)
    assert.is_true(ch:setnonblocking(true))
    assert.is_true(ch:send(big))
    assert.equal(0, S.wait(pid))
    ch:close()
  end)

  it("closes descriptors of a half-received frame on close", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b)
    local r, w = ipc.pipe()
    local before = nfds()
    assert(a:sendmsg{ data = frame(2, pack("<Bs4", 5, "x")):sub(1, 4), fds = { r, w } })
    ch:settimeout(0.01)
    assert.equal("timeout", select(2, ch:recv()))
    ch:close()
    assert.equal(before - 1, nfds())
    a:close()
    r:close()
    w:close()
  end)

  it("is pollable and closes once (close, __close)", function()
    local a, b = ipc.socketpair()
    local fd
    do
      local ch <close> = ipc.channel(a)
      local cb = ipc.channel(b)
      fd = a:fileno()
      assert.equal(fd, ch:fileno())
      assert.equal(fd, ch:getfd())
      assert.equal(fd, ch:pollfd())
      assert.equal("r", ch:events())
      assert.equal(ch.sock, a)
      assert.equal(("channel (stream, fd %d)"):format(fd), tostring(ch))
      assert.same({}, ipc.poll({ [cb] = "r" }, 0))
      ch:send("ready")
      assert.equal("r", ipc.poll({ [cb] = "r" }, 1)[cb])
      assert.equal("ready", cb:recv())
      assert.same({}, ipc.poll({ [cb] = "r" }, 0)) -- nothing was read ahead
      assert.is_true(cb:close())
      assert.is_true(cb:close())
      assert.equal(-1, cb:getfd())
      assert.error_matches(function() cb:fileno() end, "closed channel")
    end
    assert.equal("socket (closed)", tostring(a))
  end)

  it("rejects bad arguments", function()
    local a, b = ipc.socketpair()
    local r, w = ipc.pipe()
    local d1, d2 = ipc.socketpair("dgram")
    assert.error_matches(function() ipc.channel() end, "bad argument #1 to 'channel' %(unixipc socket expected, got nil")
    assert.error_matches(function() ipc.channel(r) end, "unixipc socket expected, got userdata")
    assert.error_matches(function() ipc.channel(io.stdout) end, "unixipc socket expected")
    assert.error_matches(function() ipc.channel({}) end, "unixipc socket expected, got table")
    assert.error_matches(function() ipc.channel(d1) end, "stream or seqpacket socket expected, got dgram")
    assert.error_matches(function() ipc.channel(a, 5) end, "options must be a table")
    assert.error_matches(function() ipc.channel(a, { size = 1 }) end, "unknown option 'size'")
    assert.error_matches(function() ipc.channel(a, { maxsize = -1 }) end,
      "bad argument #2 to 'channel' %(option 'maxsize' must be an integer from 0 to 4294967295, got %-1%)")
    assert.error_matches(function() ipc.channel(a, { maxsize = 1.5 }) end, "option 'maxsize' must be an integer from 0 to 4294967295, got 1%.5")
    assert.error_matches(function() ipc.channel(a, { maxfds = 254 }) end, "option 'maxfds' must be an integer from 0 to 253, got 254")
    local ch = ipc.channel(a)
    assert.error_matches(function() ch.send({}, 1) end, "closed channel")
    ch:close()
    assert.error_matches(function() ipc.channel(a) end, "closed socket")
    b:close()
    r:close()
    w:close()
    d1:close()
    d2:close()
  end)
end)
