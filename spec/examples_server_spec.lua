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

  it("systemd_http.lua (under systemd-socket-activate, then upgraded in place)", function()
    if not S.have("systemd-socket-activate") then
      pending("systemd-socket-activate is not installed (Debian package systemd): skipped")
      return
    end
    local out, ok = S.example("systemd_http.lua")
    assert.is_true(ok, out)
    assert.equal(table.concat({
      "tcp:  hello from pid N (master N)",
      "unix: hello from pid N (master N)",
      "master ready, pid file written: true",
      "upgraded: a new master took over: true",
      "the old master left: true",
      "tcp after the upgrade, served by the new master's workers: true",
      "unix path still there: true",
      "stopped, pid file removed: true",
    }, "\n") .. "\n", out)
  end)
end)
