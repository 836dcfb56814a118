local ipc = require "unixipc"

describe("module", function()
  it("loads without touching globals", function()
    local snapshot = {}
    for k in pairs(_G) do snapshot[k] = true end
    local saved = {}
    for name, mod in pairs(package.loaded) do
      if name == "unixipc" or name:match("^unixipc%.") then
        saved[name] = mod
        package.loaded[name] = nil
      end
    end
    local again = require "unixipc"
    assert.is_table(again)
    for k in pairs(_G) do assert.is_true(snapshot[k], "new global " .. tostring(k)) end
    for name, mod in pairs(saved) do package.loaded[name] = mod end
  end)
end)
