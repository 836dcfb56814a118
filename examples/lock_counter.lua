-- lock_counter.lua: several processes increment one counter file under a lock.
--
--   lua5.4 examples/lock_counter.lua [flock|fcntl|ofd|none] [workers] [increments]
--
-- Each increment reads the number, adds one and writes it back: a
-- read-modify-write that loses updates unless the whole cycle holds the
-- lock. "none" runs without a lock, to see what goes wrong.
local ipc = require "unixipc"

local kind = arg[1] or "flock"
local workers = tonumber(arg[2]) or 4
local increments = tonumber(arg[3]) or 500

local take = ({
  flock = function(f) return ipc.flock(f, "ex") end,
  fcntl = function(f) return ipc.lock(f, { type = "write" }) end,
  ofd = function(f) return ipc.lock(f, { type = "write", ofd = true }) end,
  none = function() return { release = function() return true end } end,
})[kind]
if not take then
  io.stderr:write("usage: lock_counter.lua [flock|fcntl|ofd|none] [workers] [increments]\n")
  os.exit(2)
end

local path = os.tmpname()
local init = assert(io.open(path, "w"))
init:write("0")
init:close()

local function work()
  -- each worker opens the file itself: one open file description each, so
  -- flock and OFD locks exclude one another (an inherited descriptor would
  -- share one lock between all of them)
  local f = assert(ipc.open(path, "r+"))
  for _ = 1, increments do
    local l = assert(take(f))
    assert(f:seek("set", 0))
    local n = assert(tonumber(assert(f:read(32))))
    assert(f:seek("set", 0))
    assert(f:write(tostring(n + 1)))
    assert(l:release())
  end
  f:close()
end

local t0 = ipc.monotime()
local pids = {}
for i = 1, workers do
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok, err = pcall(work)
    if not ok then io.stderr:write("worker: ", tostring(err), "\n") end
    ipc._exit(ok and 0 or 1)
  end
  pids[i] = pid
end
local failed = 0
for _, pid in ipairs(pids) do
  local _, how, code = ipc.waitpid(pid)
  if how ~= "exit" or code ~= 0 then failed = failed + 1 end
end

local f = assert(io.open(path))
local count = tonumber(f:read("a"))
f:close()
os.remove(path)

local expected = workers * increments
print(("%s: %d workers x %d increments: counter = %d (expected %d)%s in %.2fs"):format(
  kind, workers, increments, count, expected,
  count == expected and "" or (", lost " .. (expected - count)), ipc.monotime() - t0))
os.exit((failed == 0 and (count == expected or kind == "none")) and 0 or 1)
