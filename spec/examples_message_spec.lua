-- Smoke tests for the descriptor-passing examples: each runs as its own
-- lua5.4 process, must finish on its own, succeed, and print what it promises.
local S = require "support"

local cmd = S.examplecmd

describe("message examples", function()
  it("fdpass_receiver.lua runs the whole demo on its own", function()
    local p = assert(io.popen(cmd("fdpass_receiver.lua"), "r"))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    assert.matches("^Received file descriptor: %d+ %(descriptor %(fd %d+%)%)\n"
      .. "Read from file descriptor: hello from testfile.txt\n"
      .. "sender said: Sent file descriptor %d+\n$", out)
  end)

  it("fdpass_sender.lua and fdpass_receiver.lua as two programs", function()
    local dir, cleanup = S.tmpdir()
    local f = assert(io.open(dir .. "/note.txt", "w"))
    f:write("passed between two programs")
    f:close()
    local sock = dir .. "/sock"
    local receiver = assert(io.popen(cmd("fdpass_receiver.lua", S.quote(sock)), "r"))
    -- the receiver needs a moment to listen: the sender's connect retries
    local sent
    for _ = 1, 100 do
      local p = assert(io.popen(cmd("fdpass_sender.lua", S.quote(sock) .. " " .. S.quote(dir .. "/note.txt")), "r"))
      sent = p:read("a")
      if p:close() then break end
      os.execute("sleep 0.05")
      sent = nil
    end
    local out = receiver:read("a")
    assert.is_true(receiver:close(), out)
    cleanup()
    assert.matches("^Sent file descriptor %d+\n$", sent)
    assert.matches("Read from file descriptor: passed between two programs\n", out)
  end)

  it("fdpass_sender.lua explains its usage", function()
    local p = assert(io.popen(cmd("fdpass_sender.lua"), "r"))
    local out = p:read("a")
    local ok, _, code = p:close()
    assert.is_nil(ok)
    assert.equal(2, code)
    assert.matches("usage: fdpass_sender.lua SOCKET_PATH FILE", out)
  end)
end)
