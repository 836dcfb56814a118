-- Smoke test of the bench's unixipc loops (bench/unixipc.lua): each one
-- runs briefly against the module as built, so a change in an API the
-- bench uses shows up here rather than in `make bench`. No timing is judged.
local env = 'LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" '

local function run(loop)
  local p = assert(io.popen(env .. "lua5.4 bench/unixipc.lua " .. loop .. " 0.02 2>&1"))
  local out = p:read "a"
  local ok, how, code = p:close()
  return out, ok, how, code
end

describe("bench loops", function()
  for _, loop in ipairs { "sendrecv", "bulk", "pingpong", "fdpass", "flock", "fcntl", "fork",
    "signal", "channel", "poll", "polltable", "taskswitch", "popen", "execute", "pidfd", "bigmemfd",
    "bigsocket" } do
    it(loop, function()
      local out, ok = run(loop)
      assert.is_true(ok, out)
      assert.truthy(out:match "^ok %d+ [%d.]+ [%d.]+\n$", out)
    end)
  end
end)
