-- recvmsg's scatter form (csrc/message.c): size = {n1, n2, ...} spreads a
-- message over several buffers, as readv's iovecs, and hands back one
-- string per buffer.
local ipc = require "unixipc"

describe("recvmsg{size = {n1, n2, ...}}", function()
  it("scatters a datagram over the buffers, in order", function()
    local a, b = assert(ipc.socketpair("dgram"))
    assert.equal(15, a:sendmsg { data = { "Hello, ", "sendmsg!" } })
    local parts, fds, info = b:recvmsg { size = { 4, 3, 100 } }
    assert.same({ "Hell", "o, ", "sendmsg!" }, parts)
    assert.same({}, fds)
    assert.is_false(info.truncated)
    -- more bytes than buffers: the rest is cut, as with one buffer
    assert(a:send("0123456789"))
    parts, _, info = b:recvmsg { size = { 2, 3 } }
    assert.same({ "01", "234" }, parts)
    assert.is_true(info.truncated)
    -- fewer bytes: the buffers after the end are ""
    assert(a:send("xy"))
    assert.same({ "xy", "", "" }, (b:recvmsg { size = { 5, 5, 0 } }))
    -- with descriptors, over a stream
    local c, d = assert(ipc.socketpair())
    local r, w = assert(ipc.pipe())
    assert(c:sendmsg { data = "headbody", fds = { w } })
    local got, gfds = d:recvmsg { size = { 4, 4 } }
    assert.same({ "head", "body" }, got)
    assert.equal(1, #gfds)
    gfds[1]:write("!")
    assert.equal("!", r:read(1))
    gfds[1]:close()
    for _, o in ipairs { a, b, c, d, r, w } do o:close() end
  end)

  it("scatters over more buffers than fit on the C stack", function()
    local a, b = assert(ipc.socketpair("seqpacket"))
    local sizes = {}
    for i = 1, 40 do sizes[i] = 1 end
    assert(a:send(string.rep("z", 40)))
    local parts = b:recvmsg { size = sizes }
    assert.equal(40, #parts)
    assert.equal(string.rep("z", 40), table.concat(parts))
    a:close()
    b:close()
  end)

  it("rejects bad sizes", function()
    local a, b = assert(ipc.socketpair("dgram"))
    assert.has_error(function() b:recvmsg { size = {} } end,
      "bad argument #1 to 'recvmsg' (option 'size' must be a size or a list of 1 to 1024 sizes, got 0 sizes)")
    assert.has_error(function() b:recvmsg { size = { 1, -1 } } end,
      "bad argument #1 to 'recvmsg' (option 'size'[2] must be an integer from 0 to 2147483647, got -1)")
    assert.has_error(function() b:recvmsg { size = { 1, "x" } } end)
    a:close()
    b:close()
  end)
end)
