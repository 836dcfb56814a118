-- unixipc.cqueues: unixipc calls inside coroutines run by a cqueues
-- controller yield through cqueues' poll protocol, beside cqueues' own
-- sockets, with no poll-before-call. Needs Debian's lua-cqueues.
local ipc = require "unixipc"
local S = require "support"

local have, cqueues = pcall(require, "cqueues")

describe("cqueues", function()
  if not have then
    it("needs lua-cqueues", function() pending("lua-cqueues is not installed: skipping the cqueues specs") end)
    return
  end
  require "unixipc.cqueues"

  it("keeps a ticker ticking while a task waits on a channel to a child that answers late", function()
    local cq = cqueues.new()
    local p = ipc.spawn(function(ch)
      local q = ch:recv()
      ipc.sleep(0.2)
      ch:send({ answer = q * 2 })
    end)
    local ticks, ticksatanswer, answer = 0, nil, nil
    local stop = false
    cq:wrap(function()
      while not stop do
        ticks = ticks + 1
        cqueues.sleep(0.01)
      end
    end)
    cq:wrap(function()
      assert(p.chan:send(21))
      answer = p.chan:recv()
      ticksatanswer = ticks
      assert(p:wait())
      stop = true
    end)
    assert(cq:loop())
    cq:close() -- its epoll and eventfd descriptors
    assert.same({ answer = 42 }, answer)
    assert.is_true(ticksatanswer >= 5, "ticks while waiting: " .. tostring(ticksatanswer))
    p.chan:close()
  end)

  it("serves unixipc sockets, signals and sleeps beside cqueues' own sockets", function()
    local csocket = require "cqueues.socket"
    local cq = cqueues.new()
    local a, b = ipc.socketpair()
    local ca, cb = csocket.pair()
    local sig = ipc.signalfd({ "USR1" })
    local me = ipc.getpid()
    local log = {}
    cq:wrap(function()
      local got = a:recv(10) -- (the index is taken after the wait)
      log[#log + 1] = "ipc " .. got
      a:send("back")
    end)
    cq:wrap(function()
      local got = ca:read(5)
      log[#log + 1] = "cq " .. got
    end)
    cq:wrap(function()
      local info = sig:read()
      log[#log + 1] = "signal " .. info.name
    end)
    cq:wrap(function()
      ipc.sleep(0.02)
      cb:write("hello")
      cb:flush()
      b:send("world")
      local got = b:recv(10)
      log[#log + 1] = "reply " .. got
      ipc.kill(me, "USR1")
    end)
    assert(cq:loop())
    cq:close() -- its epoll and eventfd descriptors
    table.sort(log)
    assert.same({ "cq hello", "ipc world", "reply back", "signal USR1" }, log)
    S.closeall { a, b }
    sig:close()
    ca:close()
    cb:close()
  end)

  it("times out inside a controller as outside", function()
    local cq = cqueues.new()
    local a, b = ipc.socketpair()
    a:settimeout(0.02)
    local r
    cq:wrap(function() r = { a:recv(1) } end)
    assert(cq:loop())
    cq:close() -- its epoll and eventfd descriptors
    assert.same({ nil, "timeout", ipc.errno.ETIMEDOUT }, r)
    S.closeall { a, b }
  end)

  it("leaves the main thread blocking as without the module", function()
    local a, b = ipc.socketpair()
    local pid = S.child(function() ipc.sleep(0.02) b:send("m") end)
    assert.equal("m", a:recv(1))
    S.wait(pid)
    S.closeall { a, b }
  end)
end)
