-- csrc/check.c, the ground floor's argument checks, each through a real
-- call: a Lua value to a descriptor (uipc_tofd), an integer in a range
-- (uipc_intarg), the strict option walker (uipc_options), flag families,
-- file modes, and the errno failure shape (uipc_failerrno).
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

describe("check.c", function()
  describe("a value to a descriptor", function()
    -- each kind of value names the write end of a real pipe: flock on
    -- a pipe is allowed, so the call reaches the kernel with that number
    it("takes an object, an io file, an integer and a foreign getfd/fileno, and means the same descriptor", function()
      local r, w = assert(ipc.pipe())
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      local values = {
        object = w,
        integer = w:fileno(),
        getfd = { getfd = function() return w:fileno() end },
        fileno = setmetatable({}, { __index = { fileno = function() return w:fileno() end } }),
      }
      for what, v in pairs(values) do
        -- dup2 onto a spare number: the copy is the same pipe (the write
        -- end), as the data read back from r shows
        local spare = assert(ipc.open("/dev/null"))
        assert(ipc.dup2(v, spare), what)
        assert(spare:write(what))
        assert.equal(what, r:read(64))
        spare:close()
      end
      -- an io file: flock takes it and locks that file
      local l = assert(ipc.flock(f, "ex"))
      assert.is_true(l:release())
      f:close()
      os.remove(path)
      S.closeall { r, w }
    end)

    it("refuses what is no descriptor, with the argument named", function()
      local r, w = assert(ipc.pipe())
      w:close()
      assert.error_matches(function() ipc.dup2(true, 1) end,
        "bad argument #1 to 'dup2' %(descriptor expected %(unixipc object, io file, integer or object with getfd/fileno%), got boolean%)")
      assert.error_matches(function() ipc.dup2(-1, 1) end,
        "bad argument #1 to 'dup2' %(descriptor must be an integer from 0 to 2147483647, got %-1%)")
      assert.error_matches(function() ipc.dup2(w, 1) end, "bad argument #1 to 'dup2' %(attempt to use a closed")
      assert.error_matches(function() ipc.poll({ [{}] = "r" }, 0) end, "got a table with neither")
      assert.error_matches(function() ipc.poll({ [{ getfd = function() return "x" end }] = "r" }, 0) end,
        "getfd/fileno gave string, not a descriptor")
      r:close()
    end)
  end)

  describe("integers in a range", function()
    it("states the range and what it got", function()
      assert.error_matches(function() ipc.listen("127.0.0.1:0", { backlog = -1 }) end,
        "option 'backlog' must be an integer from 0 to 2147483647, got %-1")
      assert.error_matches(function() ipc.kill(2 ^ 40, 0) end, "bad argument #1 to 'kill'")
      assert.error_matches(function() ipc.kill(1.5, 0) end, "bad argument #1 to 'kill'")
    end)

    it("lets an in-range value through to the kernel", function()
      local s = assert(ipc.listen("127.0.0.1:0", { backlog = 0 }))
      assert.equal("stream", s:getoption("type"))
      s:close()
      assert.is_true(ipc.kill(ipc.getpid(), 0))
    end)
  end)

  describe("option tables", function()
    it("refuses unknown keys, non-string keys and non-tables, and accepts nil", function()
      assert.error_matches(function() ipc.socketpair("stream", { timout = 1 }) end,
        "bad argument #2 to 'socketpair' %(unknown option 'timout'%)")
      assert.error_matches(function() ipc.socketpair("stream", { [1] = true }) end,
        "option names must be strings, got number")
      assert.error_matches(function() ipc.socketpair("stream", "fast") end,
        "options must be a table, got string")
      local a, b = assert(ipc.socketpair("stream", nil))
      S.closeall { a, b }
    end)

    it("applies the options it knows to the real descriptor", function()
      local a, b = assert(ipc.socketpair("stream", { nonblock = true }))
      assert.is_true(S.nonblocking(a))
      local data, msg, err = a:recv(1)
      assert.is_nil(data)
      assert.equal(E.EAGAIN, err, msg)
      S.closeall { a, b }
    end)
  end)

  describe("flag families", function()
    it("take their own POSIX names, short names and numbers, and nothing of another family", function()
      local a, b = assert(ipc.socketpair("dgram"))
      assert(a:send("hi"))
      for _, flag in ipairs({ "MSG_PEEK", "msg_peek", "peek", ipc.MSG_PEEK }) do
        assert.equal("hi", b:recv(8, flag)) -- peeked: still there
      end
      assert.equal("hi", b:recv(8))
      assert.error_matches(function() b:recv(8, "WNOHANG") end, "unknown flag 'WNOHANG'")
      assert.error_matches(function() b:recv(8, "pe\0ek") end, "'pe\\0ek'")
      S.closeall { a, b }
    end)
  end)

  describe("file modes", function()
    it("open with r, w, a and + as the kernel sees them, and refuse the rest", function()
      local path = os.tmpname()
      local f = assert(ipc.open(path, "w"))
      assert(f:write("abc"))
      f:close()
      f = assert(ipc.open(path, "a"))
      assert(f:write("d"))
      f:close()
      f = assert(ipc.open(path, "r"))
      assert.equal("abcd", f:read(10))
      local ok, _, err = f:write("x")
      assert.is_nil(ok)
      assert.equal(E.EBADF, err) -- opened read-only
      f:close()
      assert.error_matches(function() ipc.open(path, "q") end, "invalid mode 'q'")
      os.remove(path)
    end)
  end)

  describe("system failures", function()
    it("return nil, 'op path: message', errno", function()
      local ok, msg, err = ipc.open("/nonexistent-dir/x", "r")
      assert.is_nil(ok)
      assert.equal(E.ENOENT, err)
      assert.equal("open /nonexistent-dir/x: " .. ipc.strerror(E.ENOENT), msg)
    end)
  end)
end)
