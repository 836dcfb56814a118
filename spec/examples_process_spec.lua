-- Smoke tests for the process examples: each runs as its own lua5.4
-- process, must finish on its own, succeed, and print what it promises.
local S = require "support"
local run = S.example

describe("process examples", function()
  it("socketpair_fork.lua", function()
    local out, ok = run("socketpair_fork.lua")
    assert.equal("Received in parent: Hello from child\n", out)
    assert.is_true(ok)
  end)

  it("socketpair_local.lua", function()
    local out, ok = run("socketpair_local.lua")
    assert.equal("Read result : SOCKET PAIR TEST\nRead result : and back\n", out)
    assert.is_true(ok)
  end)

  it("socketpair_two_children.lua", function()
    local out, ok = run("socketpair_two_children.lua")
    assert.is_true(ok, out)
    assert.matches("^sender   %d+: sending 'hello'\n"
      .. "receiver %d+: received 6 bytes: 'hello'\n"
      .. "parent   %d+: both children done\n$", out)
  end)

  it("socketpair_exchange.lua", function()
    local out, ok = run("socketpair_exchange.lua")
    assert.equal("Child received: Hello from parent\nParent received: Hello from child\n", out)
    assert.is_true(ok)
  end)

  it("ruptimed.lua", function()
    local out, ok = run("ruptimed.lua")
    assert.is_true(ok, out)
    assert.matches("load average", out)
    out, ok = run("ruptimed.lua", "2 echo hello world")
    assert.is_true(ok, out)
    assert.equal("1: hello world\n2: hello world\n", out)
    out, ok = run("ruptimed.lua", "1 unixipc-no-such-program")
    assert.is_true(ok, out)
    assert.matches("^ruptimed: exec unixipc%-no%-such%-program: ", out)
  end)

  it("ruptimed.lua --daemon", function()
    local out, ok = run("ruptimed.lua", "--daemon 1 echo from the daemon")
    assert.is_true(ok, out)
    assert.equal("from the daemon\n", out)
  end)
end)
