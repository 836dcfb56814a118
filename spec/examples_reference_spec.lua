-- Smoke tests for the examples of issue 14's reference programs: each runs
-- as its own lua5.4 process, must finish on its own, succeed, and print
-- what it promises.
local S = require "support"
local run = S.example

describe("reference examples", function()
  it("ruptimed_popen.lua: ruptime over TCP, the output of a popen'd program", function()
    local out, ok = run("ruptimed_popen.lua")
    assert.is_true(ok, out)
    assert.matches("load average", out)
    out, ok = run("ruptimed_popen.lua", "2 echo hello world")
    assert.is_true(ok, out)
    assert.equal("1: hello world\n2: hello world\n", out)
    out, ok = run("ruptimed_popen.lua", "1 unixipc-no-such-program")
    assert.is_true(ok, out)
    assert.equal("error: exec unixipc-no-such-program: No such file or directory\n", out)
  end)

  it("udp_sendmsg.lua: a gathered sendmsg, a scattered recvmsg, an answer", function()
    local out, ok = run("udp_sendmsg.lua")
    assert.is_true(ok, out)
    assert.matches("client: sent 26 bytes from 3 buffers\n", out, 1, true)
    assert.matches("server: 26 bytes from 127%.0%.0%.1:%d+\n", out)
    assert.matches('server: buffer 1: "Hello, "\nserver: buffer 2: "sendmsg!"\nserver: buffer 3: " %(gathered%)"\n', out)
    assert.matches('client: server says "got 26 bytes"\n', out, 1, true)
  end)
end)
