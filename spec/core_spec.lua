local ipc = require "unixipc"

describe("module", function()
  it("loads without touching globals", function()
    local snapshot = {}
    for k in pairs(_G) do snapshot[k] = true end
    package.loaded["unixipc"] = nil
    package.loaded["unixipc.core"] = nil
    package.loaded["unixipc.net"] = nil
    local again = require "unixipc"
    assert.is_table(again)
    for k in pairs(_G) do assert.is_true(snapshot[k], "new global " .. tostring(k)) end
  end)
end)
