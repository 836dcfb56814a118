-- exec with an exact descriptor table and a working directory, and the
-- same plan in popen's clone child and spawn's forked child
-- (csrc/exec.c). Each exec runs in a forked child that ends in _exit when
-- exec fails; the new program lists its own descriptor table.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

-- sh's own descriptor table (support.lua)
local LIST, fdline = S.FDLIST, S.fdline

-- run body in a child whose stdout (fd 1) is a pipe; -> what it wrote, exit code
local function captured(body)
  local r, w = assert(ipc.pipe())
  local pid = S.child(function()
    r:close()
    body(w)
  end)
  w:close()
  local out = {}
  while true do
    local s = r:read(4096)
    if not s then break end
    out[#out + 1] = s
  end
  r:close()
  return table.concat(out), S.wait(pid)
end

describe("exec with {fds =, cwd =}", function()
  it("gives the program exactly the descriptors in fds", function()
    local out, code = captured(function(w)
      local extra = assert(ipc.open("/dev/null", "r"))
      local leaky = assert(io.open("/dev/null")) -- not close-on-exec: io.open
      assert(ipc.exec("sh", { "-c", LIST .. "; readlink /proc/$$/fd/7" }, nil,
        { fds = { [0] = extra, [1] = w, [2] = 2, [7] = w } }))
      leaky:close()
    end)
    assert.equal(0, code)
    out = fdline(out)
    assert.truthy(out:match("^0 1 2 7 \npipe:%[%d+%]\n$"), out)
  end)

  it("handles cycles and overlaps: {[13] = fd 14, [14] = fd 13, [15] = fd 13}", function()
    local out, code = captured(function(w)
      local a = assert(ipc.open("/dev/null", "r"))
      local b = assert(ipc.open("/etc/hostname", "r"))
      assert(ipc.dup2(a, 13))
      assert(ipc.dup2(b, 14))
      a:close()
      b:close()
      assert(ipc.exec("sh", { "-c", "readlink /proc/$$/fd/13 /proc/$$/fd/14 /proc/$$/fd/15; " .. LIST },
        nil, { fds = { [1] = w, [13] = 14, [14] = 13, [15] = 13 } }))
    end)
    assert.equal(0, code)
    assert.equal("1 13 14 15 \n/etc/hostname\n/dev/null\n/dev/null\n", fdline(out))
  end)

  it("an entry {[n] = n} keeps n as it is, and a closed n stays closed", function()
    local out, code = captured(function(w)
      ipc.dup2(w, 1)
      w:close()
      ipc.fdopen(0):close()
      assert(ipc.exec("sh", { "-c", LIST }, nil, { fds = { [0] = 0, [1] = 1 } }))
    end)
    assert.equal(0, code)
    assert.equal("1 \n", fdline(out))
  end)

  it("starts the program in cwd", function()
    local dir, cleanup = S.tmpdir()
    local out, code = captured(function(w)
      assert(ipc.exec("pwd", {}, nil, { cwd = dir, fds = { [1] = w } }))
    end)
    assert.equal(0, code)
    assert.equal(dir .. "\n", out)
    -- a relative program is found from cwd
    local f = assert(io.open(dir .. "/hello.sh", "w"))
    f:write("echo hello from $(pwd)\n")
    f:close()
    os.execute("chmod +x " .. dir .. "/hello.sh")
    out, code = captured(function(w)
      assert(ipc.exec("./hello.sh", {}, nil, { cwd = dir, fds = { [1] = w } }))
    end)
    assert.equal(0, code)
    assert.equal("hello from " .. dir .. "\n", out)
    cleanup()
  end)

  it("a failed exec puts back the descriptors, their flags and the directory", function()
    local out, code = captured(function(w)
      local r2, w2 = assert(ipc.pipe())
      local plain = assert(io.open("/dev/null")) -- not close-on-exec
      local before = ipc._openfds()
      local cloexec = {}
      for fd in pairs(before) do cloexec[fd] = S.cloexec(fd) end
      local pp = io.popen("pwd")
      local cwd = pp:read("l")
      pp:close()
      local ok, msg, err = ipc.exec("unixipc-no-such-program", {}, nil,
        { cwd = "/", fds = { [0] = r2, [1] = w, [2] = w2, [5] = 1 } })
      assert(ok == nil and err == E.ENOENT, msg)
      assert(msg == "exec unixipc-no-such-program: No such file or directory", msg)
      local after = ipc._openfds()
      for fd, t in pairs(before) do
        assert(after[fd] == t, ("fd %d: %s became %s"):format(fd, t, tostring(after[fd])))
        assert(S.cloexec(fd) == cloexec[fd], "close-on-exec of fd " .. fd)
      end
      for fd, t in pairs(after) do assert(before[fd], "new fd " .. fd .. " " .. t) end
      local p = io.popen("pwd")
      assert(p:read("l") == cwd)
      p:close()
      -- a bad directory fails before anything changes
      ok, msg, err = ipc.exec("true", {}, nil, { cwd = "/nonexistent/dir", fds = { [1] = w } })
      assert(ok == nil and err == E.ENOENT and msg == "chdir /nonexistent/dir: No such file or directory", msg)
      w:write("all back\n")
      plain:close()
    end)
    assert.equal(0, code)
    assert.equal("all back\n", out)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ipc.exec("true", {}, nil, { fd = {} }) end,
      "bad argument #4 to 'exec' (unknown option 'fd')")
    assert.has_error(function() ipc.exec("true", {}, nil, { setsid = true }) end,
      "bad argument #4 to 'exec' (unknown option 'setsid')")
    assert.has_error(function() ipc.exec("true", {}, nil, "x") end,
      "bad argument #4 to 'exec' (options must be a table, got string)")
    assert.has_error(function() ipc.exec("true", {}, nil, { fds = 1 }) end,
      "bad argument #4 to 'exec' (option 'fds' must be a table {[n] = descriptor, ...}, got number)")
    assert.has_error(function() ipc.exec("true", {}, nil, { fds = { [-1] = 1 } }) end,
      "bad argument #4 to 'exec' (option 'fds': descriptor numbers go from 0 to 2147483647, got -1)")
    assert.has_error(function() ipc.exec("true", {}, nil, { fds = { x = 1 } }) end,
      "bad argument #4 to 'exec' (option 'fds': keys must be descriptor numbers, got string)")
    assert.has_error(function() ipc.exec("true", {}, nil, { fds = { [3] = true } }) end,
      "bad argument #4 to 'exec' (fds[3]: descriptor expected (unixipc object, io file, integer or object with getfd/fileno), got boolean)")
    local r, w = assert(ipc.pipe())
    r:close()
    assert.has_error(function() ipc.exec("true", {}, nil, { fds = { [4] = r } }) end,
      "bad argument #4 to 'exec' (fds[4]: attempt to use a closed descriptor)")
    assert.has_error(function() ipc.exec("true", {}, nil, { cwd = 7 }) end,
      "bad argument #4 to 'exec' (option 'cwd' must be a directory name, got number)")
    assert.has_error(function() ipc.exec("true", {}, nil, { cwd = "a\0b" }) end,
      "bad argument #4 to 'exec' (option 'cwd' contains a NUL byte)")
    w:close()
  end)
end)
