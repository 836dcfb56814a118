-- The rockspec builds the same module with luarocks' builtin backend.
local S = require "support"

describe("rockspec", function()
  it("lists every C source and every Lua module", function()
    local fh = assert(io.open("rockspec/unixipc-scm-1.rockspec"))
    local spec = fh:read("a")
    fh:close()
    local ls = io.popen("ls csrc/*.c lua/unixipc.lua lua/unixipc/*.lua lua/unixipc/*/*.lua")
    local n = 0
    for path in ls:lines() do
      n = n + 1
      local listed = spec:find('"' .. path .. '"', 1, true)
      assert.is_not_nil(listed, path .. " is missing from the rockspec")
      -- a Lua file is listed under the module name require uses for it
      local mod = path:match("^lua/(.*)%.lua$")
      if mod then
        mod = mod:gsub("/", ".")
        assert.is_not_nil(spec:find(('["%s"] = "%s"'):format(mod, path), 1, true), path .. " is not module " .. mod)
      end
    end
    ls:close()
    assert.is_true(n > 10)
  end)

  it("builds and installs with luarocks --lua-version=5.4", function()
    if not S.have("luarocks") then
      pending("luarocks is not installed: skipping the rockspec build")
      return
    end
    local dir, cleanup = S.tmpdir()
    assert.is_true(os.execute(("cp -r csrc lua rockspec %s/"):format(dir)))
    local cmd = ("cd %s && luarocks --lua-version=5.4 make --tree=%s/tree rockspec/unixipc-scm-1.rockspec >%s/log 2>&1")
      :format(dir, dir, dir)
    local ok = os.execute(cmd)
    local fh = io.open(dir .. "/log")
    local log = fh:read("*a")
    fh:close()
    assert.is_true(ok, log)
    local p = io.popen(("LUA_PATH='%s/tree/share/lua/5.4/?.lua;;' LUA_CPATH='%s/tree/lib/lua/5.4/?.so;;' "
      .. "lua5.4 -e 'local ipc = require \"unixipc\"; local a, b = ipc.socketpair(); a:send(\"ok\"); "
      .. "io.write(b:recv(2)); print(ipc.spawn ~= nil)'"):format(dir, dir))
    local out = p:read("*a")
    p:close()
    cleanup()
    assert.equal("oktrue\n", out)
  end)
end)
