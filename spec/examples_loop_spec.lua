-- Smoke test of the scheduler's example: it runs to the end on its own.
local S = require "support"

describe("loop examples", function()
  it("chat: a line from one client reaches all the others", function()
    local out, ok = S.example("chat")
    assert.is_true(ok, out)
    assert.matches("ada heard: bob: hello from bob %(2%) | cyd: hello from cyd %(3%)", out)
    assert.matches("bob heard: ada: hello from ada %(1%) | cyd: hello from cyd %(3%)", out)
    assert.matches("cyd heard: ada: hello from ada %(1%) | bob: hello from bob %(2%)", out)
  end)
end)
