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

describe("every module", function()
  -- in a fresh lua5.4, where nothing is loaded yet: require unixipc.core
  -- and every file of lua/ (new ones included), then compare the globals
  -- (names and values) and the signal state of the process
  it("sets no global and changes no signal state on require", function()
    local S = require "support"
    local mods = { "unixipc.core" }
    local ls = assert(io.popen("cd lua && ls unixipc.lua unixipc/*.lua unixipc/*/*.lua"))
    for f in ls:lines() do mods[#mods + 1] = (f:gsub("%.lua$", ""):gsub("/", ".")) end
    ls:close()
    assert.is_true(#mods >= 7)
    local p = S.lua(("local MODS = %q\n"):format(table.concat(mods, " ")) .. [[
      local function sigstate()
        local f = assert(io.open("/proc/self/status"))
        local s = f:read("a")
        f:close()
        return table.concat({ s:match("SigBlk:%s*(%x+)"), s:match("SigIgn:%s*(%x+)"),
          s:match("SigCgt:%s*(%x+)") }, " ")
      end
      local before, sig0 = {}, sigstate()
      for k, v in pairs(_G) do before[k] = v end
      for name in MODS:gmatch("%S+") do
        local ok, err = pcall(require, name)
        if not ok then print("require " .. name .. ": " .. tostring(err)) end
      end
      for k, v in pairs(_G) do
        if before[k] ~= v then print("global " .. tostring(k)) end
      end
      for k in pairs(before) do
        if _G[k] == nil then print("removed global " .. tostring(k)) end
      end
      if sigstate() ~= sig0 then print("signal state " .. sig0 .. " -> " .. sigstate()) end
      print("done")
    ]])
    local out = p:read("a")
    p:close()
    assert.equal("done\n", out)
  end)
end)
