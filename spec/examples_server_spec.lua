-- Smoke test for the server example: run with no arguments it serves on a
-- free port, holds 20 keep-alive connections and sends 3 requests on each,
-- stops itself with SIGTERM and finishes.
local S = require "support"

describe("server examples", function()
  it("prefork_http.lua", function()
    local out, ok = S.example("prefork_http.lua")
    assert.is_true(ok, out)
    local n = tonumber(out:match("20 connections x 3 requests: 60 answered, by (%d) workers?\n"))
    assert.is_true(n and n >= 1 and n <= 3, out)
    assert.matches("40 of 40 later requests came back on the connection's first worker %(keep%-alive%)\n", out)
    assert.matches("server stopped by SIGTERM: 3 workers started, 0 crashed\n$", out)
  end)
end)
