-- The socket examples run end to end and say what they should.
local S = require "support"

local run = S.example

describe("socket examples", function()
  it("unix_stream: a client and a server over a path", function()
    local out, ok = run("unix_stream")
    assert.is_true(ok, out)
    assert.matches("server got: hello, server", out)
    assert.matches("client got: hello, client %d+", out)
  end)

  it("unix_dgram: datagrams answered to the sender's path", function()
    local out, ok = run("unix_dgram")
    assert.is_true(ok, out)
    assert.matches('client got "FIRST DATAGRAM"', out)
    assert.matches('client got "SECOND DATAGRAM"', out)
  end)

  it("findsvc: lists localhost", function()
    local out, ok = run("findsvc", "localhost 80")
    assert.is_true(ok, out)
    assert.matches("family inet%s+type stream%s+protocol 6%s+host 127.0.0.1%s+port 80", out)
  end)

  it("connect_retry: backs off until a late server listens", function()
    local out, ok = run("connect_retry")
    assert.is_true(ok, out)
    assert.matches("connect failed %(connect: Connection refused%), retrying", out)
    assert.matches("server says: you made it", out)
  end)

  it("echo_ok_server: answers every message with ok", function()
    local out, ok = run("echo_ok_server")
    assert.is_true(ok, out)
    local n = select(2, out:gsub("client got: ok", ""))
    assert.equal(3, n)
    assert.matches("client left %(eof%)", out)
  end)

  it("ruptime_udp: gets the uptime over UDP with a receive timeout", function()
    local out, ok = run("ruptime_udp")
    assert.is_true(ok, out)
    assert.matches("uptime: .*load average", out)
  end)

  it("demo: the tour make demo runs finishes and says what it did", function()
    local out, ok = run("demo")
    assert.is_true(ok, out)
    assert.matches("job 3: sum 33 computed by pid %d+", out)
    assert.matches("written by pid %d+ through a passed descriptor", out)
    assert.matches("ended: exit 5", out)
    assert.matches("counter: 1000 %(expected 1000%)", out)
    assert.matches("the urgent byte: !", out)
    assert.matches("\ndone\n$", out)
  end)
end)
