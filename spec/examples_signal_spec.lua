-- Smoke tests for the signal examples: each runs to the end on its own.
-- They run against the build under test (LUA_CPATH from make, so
-- `make test SELFPIPE=1` runs them on the self-pipe fallback too).
local S = require "support"
local run = S.example

describe("examples (signals)", function()
  it("oob_server reads the urgent byte apart from the normal data", function()
    local out, ok, how, code = run("oob_server")
    assert.is_true(ok, out)
    assert.same({ "exit", 0 }, { how, code })
    assert.truthy(out:match("listening on 127%.0%.0%.1:%d+"), out)
    assert.truthy(out:find("got 1 bytes of oob data 'c'", 1, true), out)
    local normal = {}
    for n, data in out:gmatch("got (%d+) bytes of normal data '([^']*)'") do
      assert.equal(tonumber(n), #data)
      normal[#normal + 1] = data
    end
    assert.equal("123ab123", table.concat(normal))
    assert.truthy(out:find("client ended: exit 0", 1, true), out)
  end)

  it("sigio reads every message on SIGIO and reaps the child on SIGCHLD", function()
    local out, ok, how, code = run("sigio")
    assert.is_true(ok, out)
    assert.same({ "exit", 0 }, { how, code })
    assert.truthy(out:find("SIGIO for fd mine", 1, true), out)
    local msgs = {}
    for data in out:gmatch("read '([^']*)'") do msgs[#msgs + 1] = data end
    assert.equal("message 1message 2message 3", table.concat(msgs))
    assert.truthy(out:find("child ended: exit 0", 1, true), out)
  end)
end)
