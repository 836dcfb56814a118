-- Smoke test for the server example: run with no arguments it serves on a
-- free port, queries itself, stops itself with SIGTERM and finishes.
local S = require "support"

describe("server examples", function()
  it("prefork_http.lua", function()
    local out, ok = S.example("prefork_http.lua")
    assert.is_true(ok, out)
    for i = 1, 3 do
      assert.matches(("request %d: 200 OK, hello from pid %%d+\n"):format(i), out)
    end
    local n = tonumber(out:match("3 requests served by (%d) different workers\n"))
    assert.is_true(n and n >= 1 and n <= 3, out)
    assert.matches("server stopped by SIGTERM: 3 workers started, 0 crashed\n$", out)
  end)
end)
