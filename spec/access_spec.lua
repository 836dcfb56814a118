-- Access control on unix socket paths (issue 13, part 2): listen's mode
-- keeps another uid out, and the mode is never more open on the way.
-- (The path is unlinked at close only in the process that bound it:
-- spec/conventions_spec.lua, "listen{unlink = true} removes only a dead
-- socket file". The final mode: the same file, "mode = 0600 gives the
-- socket file exactly that mode". Abstract names have no file mode: the
-- server decides by peercred, examples/owner_only.lua and its spec.)
local ipc = require "unixipc"
local S = require "support"

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

local function root() return sh("id -u"):match("^(%d+)") == "0" end

-- run Lua source as nobody (setpriv): its output
local function asnobody(src)
  local gid = sh("id -g nobody"):match("%d+") or "nogroup"
  -- a sanitized build (make asan) reports to stderr here: nobody cannot
  -- write the report directory, and any report shows in the output
  local cmd = ("ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:log_path=stderr\" LUA_PATH='lua/?.lua;lua/?/init.lua;;' " ..
    "LUA_CPATH=%s setpriv --reuid=nobody --regid=%s --clear-groups lua5.4 -e %s 2>&1"):format(
    S.quote(os.getenv("LUA_CPATH") or "build/?.so;;"), gid, S.quote(src))
  return sh(cmd)
end

describe("listen{mode} and other users", function()
  it("a process of another uid (nobody) cannot connect to a mode 0600 socket; at 0666 it can", function()
    if not root() or not S.have("setpriv") then
      pending("needs root and setpriv(1) to run a client as another user (nobody)")
      return
    end
    local dir, cleanup = S.tmpdir()
    -- the directory lets everyone in, so the socket's own mode decides
    assert(os.execute("chmod 755 " .. S.quote(dir)))
    local private = assert(ipc.listen(dir .. "/private.sock", { mode = tonumber("600", 8) }))
    local open = assert(ipc.listen(dir .. "/open.sock", { mode = tonumber("666", 8) }))
    local out = asnobody(([[
      local ipc = require "unixipc"
      for _, name in ipairs({ "private", "open" }) do
        local c, msg, err = ipc.connect(%q .. "/" .. name .. ".sock")
        print(name .. ": " .. (c and "connected" or (msg .. " " .. tostring(err))))
        if c then c:close() end
      end
    ]]):format(dir))
    assert.equal(("private: connect: %s %d\nopen: connected\n"):format(
      ipc.strerror(ipc.errno.EACCES), ipc.errno.EACCES), out)
    -- nothing reached the private server; the open one saw nobody
    assert.same({}, ipc.poll({ [private] = "r" }, 0))
    open:settimeout(S.slow(5))
    local conn = assert(open:accept())
    assert.equal(tonumber(sh("id -u nobody"):match("%d+")), conn:peercred().uid)
    conn:close()
    private:close()
    open:close()
    cleanup()
  end)

  it("mode is the umask's work around bind(2): no chmod after it, the umask put back", function()
    if not S.have("strace") or os.execute("strace -qq -o /dev/null true 2>/dev/null") ~= true then
      pending("no strace that can trace here")
      return
    end
    local dir, cleanup = S.tmpdir()
    local trace = dir .. "/trace"
    local src = ([[
      local ipc = require "unixipc"
      ipc.umask(tonumber("022", 8))
      local s = assert(ipc.listen(%q, { mode = tonumber("600", 8) }))
      s:close()
    ]]):format(dir .. "/s.sock")
    -- (LeakSanitizer cannot run under ptrace: off for this one, under make asan)
    assert(os.execute(("ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:detect_leaks=0\" LUA_PATH='lua/?.lua;;' LUA_CPATH=%s " ..
      "strace -qq -o %s -e trace=umask,bind,chmod,fchmod,fchmodat lua5.4 -e %s"):format(
      S.quote(os.getenv("LUA_CPATH") or "build/?.so;;"), S.quote(trace), S.quote(src))))
    local f = assert(io.open(trace))
    local calls = {}
    for line in f:lines() do
      local name, args = line:match("^(%w+)%((.-)%)%s*=")
      if name and (name ~= "bind" or args:find("s.sock", 1, true)) then
        calls[#calls + 1] = name == "umask" and "umask(" .. args .. ")" or name
      end
    end
    f:close()
    -- the umask set to the complement of 0600 for the bind, and put back;
    -- no chmod of any kind
    assert.same({ "umask(022)", "umask(0177)", "bind", "umask(022)" }, calls)
    cleanup()
  end)
end)
