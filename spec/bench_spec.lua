-- Smoke test of the bench's unixipc loops (bench/unixipc.lua): each one
-- runs briefly against the module as built, so a change in an API the
-- bench uses shows up here rather than in `make bench`. No timing is judged.
local ipc = require "unixipc"

local env = 'LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" '

local function run(loop)
  local p = assert(io.popen(env .. "lua5.4 bench/unixipc.lua " .. loop .. " 0.02 2>&1"))
  local out = p:read "a"
  local ok, how, code = p:close()
  return out, ok, how, code
end

local sockm = ipc._methods.socket
local built = {
  sendrecv = true, bulk = true, pingpong = true, fork = true, polltable = true,
  poll = ipc.pollset ~= nil,
  fdpass = sockm.sendmsg ~= nil and sockm.recvmsg ~= nil,
  flock = ipc.flock ~= nil,
  fcntl = ipc.lock ~= nil,
  signal = ipc.signalfd ~= nil,
  channel = ipc.channel ~= nil,
  popen = ipc.popen ~= nil, execute = true, pidfd = ipc.pidfd ~= nil,
  bigmemfd = ipc.memfd ~= nil, bigsocket = ipc.memfd ~= nil,
}

describe("bench loops", function()
  for _, loop in ipairs { "sendrecv", "bulk", "pingpong", "fdpass", "flock", "fcntl", "fork",
    "signal", "channel", "poll", "polltable", "popen", "execute", "pidfd", "bigmemfd", "bigsocket" } do
    it(loop, function()
      local out, ok = run(loop)
      assert.is_true(ok, out)
      if built[loop] then
        assert.truthy(out:match "^ok %d+ [%d.]+ [%d.]+\n$", out)
      else
        assert.truthy(out:match "^na not built", out)
      end
    end)
  end
end)
