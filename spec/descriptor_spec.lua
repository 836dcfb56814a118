-- Wrapped descriptors (ipc.fdopen here; recvmsg uses the same path) read
-- their O_NONBLOCK flag on first need, not when wrapped: they must behave
-- exactly as if it had been read at once.
local ipc = require "unixipc"

-- run fn in a child (it must not block: the parent kills it after 5 s)
local function inchild(fn)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok, err = pcall(fn)
    if not ok then io.stderr:write(tostring(err), "\n") end
    ipc._exit(ok and 0 or 1)
  end
  local deadline = ipc.monotime() + 5
  while true do
    local got, how, code = ipc.waitpid(pid, "nohang")
    if got == pid then return how, code end
    if ipc.monotime() > deadline then
      ipc.kill(pid, "KILL")
      ipc.waitpid(pid)
      return "timeout"
    end
    ipc.poll({}, 0.01)
  end
end

-- a second object on the same descriptor number, wrapped like a received one
-- (only in a child: two owners of one number)
local function wrapped(sock)
  return ipc.fdopen(sock:dup():fileno())
end

describe("wrapped descriptor", function()
  it("is a socket object when it is a socket, with its family and type", function()
    local how, code = inchild(function()
      local a, b = assert(ipc.socketpair("dgram"))
      local w = wrapped(b)
      assert(tostring(w):match "^socket %(unix dgram, fd %d+%)$", tostring(w))
      assert(w:getoption("type") == "dgram")
      assert(a:send(""))
      assert(w:recv(10) == "", "an empty datagram is not end of stream")
    end)
    assert.same({ "exited", 0 }, { how, code })
  end)

  it("that is a pipe writes without SIGPIPE, and says it is a pipe", function()
    local how, code = inchild(function()
      local r, w0 = assert(ipc.pipe())
      local w = ipc.fdopen(w0:dup():fileno())
      assert(tostring(w):match "^descriptor %(pipe, fd %d+%)$", tostring(w))
      local w2 = ipc.fdopen(w0:dup():fileno()) -- not asked yet: the write finds out
      r:close()
      local n, msg, err = w2:write("x")
      assert(n == nil and err == ipc.errno.EPIPE, msg)
      n, msg, err = w:write("x")
      assert(n == nil and err == ipc.errno.EPIPE, msg)
    end)
    assert.same({ "exited", 0 }, { how, code })
  end)

  it("that is a file is a plain descriptor", function()
    local how, code = inchild(function()
      local f = assert(ipc.open("/dev/null", "w"))
      local w = ipc.fdopen(f:dup():fileno())
      assert(w:write("abc") == 3)
      assert(tostring(w):match "^descriptor %(fd %d+%)$", tostring(w))
    end)
    assert.same({ "exited", 0 }, { how, code })
  end)

  it("found non-blocking stays non-blocking", function()
    local how, code = inchild(function()
      local a, b = assert(ipc.socketpair("stream", { nonblock = true }))
      local w = wrapped(b)
      local s, msg, err = w:recv(10)
      assert(s == nil and err == ipc.errno.EAGAIN, msg)
      assert(w:settimeout(nil))
      s, msg, err = w:recv(10)
      assert(s == nil and err == ipc.errno.EAGAIN, msg)
      assert(a:send("x"))
      assert(w:recv(10) == "x")
    end)
    assert.same({ "exited", 0 }, { how, code })
  end)

  it("found blocking blocks, and takes a timeout", function()
    local how, code = inchild(function()
      local a, b = assert(ipc.socketpair())
      local w = wrapped(b)
      assert(a:send("y"))
      assert(w:recv(10) == "y")
      assert(w:settimeout(0.05))
      local s, msg = w:recv(10)
      assert(s == nil and msg == "timeout", msg)
      assert(w:settimeout(nil))
      assert(w:setnonblocking(true))
      local _, _, err = w:recv(10)
      assert(err == ipc.errno.EAGAIN)
    end)
    assert.same({ "exited", 0 }, { how, code })
  end)

  it("turned blocking with setnonblocking(false) blocks until data comes", function()
    local how, code = inchild(function()
      local a, b = assert(ipc.socketpair("stream", { nonblock = true }))
      local w = wrapped(b)
      assert(w:setnonblocking(false))
      local pid = assert(ipc.fork())
      if pid == 0 then
        ipc.poll({}, 0.05)
        a:send("z")
        ipc._exit(0)
      end
      assert(w:recv(10) == "z")
      ipc.waitpid(pid)
    end)
    assert.same({ "exited", 0 }, { how, code })
  end)
end)
