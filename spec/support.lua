-- Shared bits for the specs: temporary directories, a second Lua process,
-- and descriptor flags read back from /proc.
local M = {}

local ipc = require "unixipc"

-- a fresh temporary directory, removed (with its contents) by the cleanup fn
function M.tmpdir()
  local p = io.popen("mktemp -d /tmp/unixipc-spec.XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir, function() os.execute("rm -rf '" .. dir .. "'") end
end

-- run Lua source in a second lua5.4 process; returns the popen file
-- (mode "r": read its stdout; "w": write its stdin)
function M.lua(src, mode)
  local cmd = ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s' lua5.4 -e %s"):format(
    os.getenv("LUA_CPATH") or "build/?.so;;", M.quote(src))
  return io.popen(cmd, mode or "r")
end

-- the command line that runs examples/<script> against the build under test
-- (LUA_CPATH from make, so SELFPIPE=1 runs use the self-pipe build)
function M.examplecmd(script, args)
  if not script:match("%.lua$") then script = script .. ".lua" end
  return ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%s timeout 60 lua5.4 examples/%s %s 2>&1"):format(
    M.quote(os.getenv("LUA_CPATH") or "build/?.so;;"), script, args or "")
end

-- run an example to the end: its output, then io.popen's close results
function M.example(script, args)
  local p = assert(io.popen(M.examplecmd(script, args)))
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, ok, how, code
end

-- deep equality that knows nan, -0.0, integer/float subtypes and table keys
-- (which come back from a codec as other, equal tables)
function M.same(x, y)
  if type(x) ~= type(y) then return false end
  if type(x) == "number" then
    if math.type(x) ~= math.type(y) then return false end
    if x ~= x then return y ~= y end
    return x == y and 1 / x == 1 / y
  end
  if type(x) ~= "table" then return x == y end
  local nx, ny = 0, 0
  for k, v in next, x do
    nx = nx + 1
    if type(k) ~= "table" then
      if not M.same(v, rawget(y, k)) then return false end
    else -- a table key comes back as another table: find a twin
      local found = false
      for k2, v2 in next, y do
        if type(k2) == "table" and M.same(k, k2) and M.same(v, v2) then found = true; break end
      end
      if not found then return false end
    end
  end
  for _ in next, y do ny = ny + 1 end
  return nx == ny
end

-- how many descriptors this process has open
function M.nfds()
  local n = 0
  for _ in pairs(ipc._openfds()) do n = n + 1 end
  return n
end

-- close every object of a list
function M.closeall(list)
  for _, o in ipairs(list) do o:close() end
end

-- the shell-quoted form of a string
function M.quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- flags of an open descriptor from /proc/self/fdinfo (octal, as open(2) flags)
function M.fdflags(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("flags:%s*(%d+)"), 8)
end

function M.cloexec(obj)
  local fd = type(obj) == "number" and obj or obj:fileno()
  return M.fdflags(fd) & ipc.O_CLOEXEC ~= 0
end

function M.nonblocking(obj)
  return M.fdflags(obj:fileno()) & ipc.O_NONBLOCK ~= 0
end

-- run fn(...) in a forked child that always ends in _exit, never back in
-- busted: the exit code is fn's integer result (0 for anything else), or
-- 99 when fn raises (the error goes to stderr). Returns the child's pid.
M.FAILED = 99
function M.child(fn, ...)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok, code = pcall(fn, ...)
    if not ok then pcall(io.stderr.write, io.stderr, "child: ", tostring(code), "\n") end
    pcall(io.stdout.flush, io.stdout)
    pcall(io.stderr.flush, io.stderr)
    ipc._exit(not ok and M.FAILED or math.type(code) == "integer" and code or 0)
  end
  return pid
end

-- wait for a child: its exit code, or "signal N" (or "stop N" ...). With
-- a timeout, a child still running then is killed, reaped, and "timeout"
-- returned: a safety net for a child that must not block, not a measure.
function M.wait(pid, timeout)
  local got, how, code
  if timeout then
    local deadline = ipc.monotime() + timeout
    repeat
      got, how, code = ipc.waitpid(pid, "nohang")
      if got ~= 0 then break end
      if ipc.monotime() > deadline then
        ipc.kill(pid, "KILL")
        ipc.waitpid(pid)
        return "timeout"
      end
      ipc.sleep(0.005)
    until false
  else
    got, how, code = ipc.waitpid(pid)
  end
  assert(got == pid, how)
  if how == "exit" then return code end
  return how .. " " .. tostring(code)
end

-- run fn(...) in a child and wait for it: its exit code (see M.child)
function M.run(fn, ...)
  return M.wait(M.child(fn, ...))
end

-- does this machine have an IPv6 loopback?
function M.has_ipv6()
  local s = ipc.socket("inet6", "stream")
  if not s then return false end
  local ok = s:bind("[::1]:0")
  s:close()
  return ok == true
end

-- what stands at path: "socket", "file", "directory", "other", or nil
-- (asked of test(1), not of the module under test)
function M.filetype(path)
  local q = M.quote(path)
  for _, t in ipairs { { "-S", "socket" }, { "-d", "directory" }, { "-f", "file" }, { "-e", "other" } } do
    if os.execute(("test %s %s"):format(t[1], q)) then return t[2] end
  end
  return nil
end

-- UNIXIPC_SLOW=k (make valgrind sets it): a wait for something that is
-- bound to happen, multiplied by k. Never for a timeout a test expects to
-- expire: those stay as they are.
-- the whole of a file, or nil when it cannot be opened
function M.readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- a shell command listing sh's own descriptor table (sh runs ls as its
-- child: no pipeline, whose pipes sh would hold while ls looks); its
-- output is tidied by M.fdline
M.FDLIST = "ls /proc/$$/fd"

-- "0 1 2 12 " from ls's lines, in numeric order, other lines after
function M.fdline(out)
  local nums, rest = {}, {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^%d+$") then nums[#nums + 1] = tonumber(line) else rest[#rest + 1] = line end
  end
  table.sort(nums)
  local s = table.concat(nums, " ") .. " \n"
  if #rest > 0 then s = s .. table.concat(rest, "\n") .. "\n" end
  return s
end

M.SLOW = tonumber(os.getenv("UNIXIPC_SLOW")) or 1
function M.slow(seconds) return seconds * M.SLOW end

function M.have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

return M
