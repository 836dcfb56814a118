-- csrc/constants.c: one table per family, written once, and the errno and
-- resolver codes. Each family is checked against what the kernel does with
-- its values, not only against the table itself.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno

describe("constants.c", function()
  it("ipc.errno maps names to numbers and back, and the kernel's errno matches it", function()
    assert.equal(11, E.EAGAIN)
    assert.equal("EAGAIN", E[11])
    for name, n in pairs(E) do
      if type(name) == "string" then
        assert.equal(name == "EWOULDBLOCK" and "EAGAIN" or name == "EDEADLOCK" and "EDEADLK"
          or name == "ENOTSUP" and "EOPNOTSUPP" or name, E[n], name)
        assert.is_string(ipc.strerror(n))
      end
    end
    local ok, _, err = ipc.open("/nonexistent-dir/x", "r")
    assert.is_nil(ok)
    assert.equal(E.ENOENT, err)
  end)

  it("resolver codes are negative, distinct from every errno, and strerror takes them", function()
    for _, k in ipairs({ "EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_FAMILY", "EAI_SERVICE" }) do
      assert.is_true(ipc[k] < 0, k)
      assert.is_nil(E[ipc[k]], k)
      assert.is_string(ipc.strerror(ipc[k]))
    end
    local ok, msg, code = ipc.getaddrinfo("localhost", "no-such-service-name")
    assert.is_nil(ok)
    assert.is_true(code < 0, msg)
    assert.equal(msg:match(": (.*)$"), ipc.strerror(code))
  end)

  it("signal names map to numbers and back, and kill delivers the number named", function()
    assert.equal(15, ipc.signals.TERM)
    assert.equal("TERM", ipc.signals[15])
    assert.equal(ipc.signals.USR1, ipc.SIGUSR1)
    local sig = assert(ipc.signalfd({ "USR1" }))
    for _, name in ipairs({ "USR1", "SIGUSR1", "usr1", ipc.SIGUSR1 }) do
      assert(ipc.kill(ipc.getpid(), name))
      local rec = assert(sig:read(5))
      assert.equal(ipc.SIGUSR1, rec.signo)
    end
    sig:close()
  end)

  it("message flags are the kernel's: MSG_PEEK leaves the data, MSG_DONTWAIT does not wait", function()
    local a, b = assert(ipc.socketpair("stream"))
    local data, _, err = b:recv(4, ipc.MSG_DONTWAIT)
    assert.is_nil(data)
    assert.equal(E.EAGAIN, err)
    assert(a:send("abcd"))
    assert.equal("ab", b:recv(2, ipc.MSG_PEEK))
    assert.equal("abcd", b:recv(4, ipc.MSG_WAITALL))
    S.closeall { a, b }
  end)

  it("lock, whence and wait constants are the kernel's", function()
    local path = os.tmpname()
    local f = assert(ipc.open(path, "r+"))
    local l = assert(ipc.flock(f, ipc.LOCK_EX))
    assert.is_true(l:release())
    l = assert(ipc.flock(f, ipc.LOCK_SH | ipc.LOCK_NB))
    assert.is_true(l:release())
    assert(f:write("0123456789"))
    assert.equal(4, f:seek(ipc.SEEK_SET, 4))
    assert.equal(10, f:seek(ipc.SEEK_END, 0))
    f:close()
    os.remove(path)
    local pid = S.child(function() return 3 end)
    local got, how, code
    repeat got, how, code = ipc.waitpid(pid, ipc.WNOHANG) until got ~= 0
    assert.same({ pid, "exit", 3 }, { got, how, code })
  end)

  it("families, socket types and shutdown values make the sockets they name", function()
    local a, b = assert(ipc.socketpair(ipc.SOCK_SEQPACKET))
    assert.equal("seqpacket", a:getoption("type"))
    assert(a:shutdown(ipc.SHUT_WR))
    assert.same({ nil, "eof" }, { b:recv(1) })
    S.closeall { a, b }
    local s = assert(ipc.socket(ipc.AF_INET, "dgram"))
    assert.equal("inet", s:getsockname().family)
    s:close()
  end)
end)
