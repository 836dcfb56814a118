-- Spec hygiene, loaded by busted before every spec file (see .busted).
-- Around each test it compares the open descriptors (/proc/self/fd) and
-- looks for children of this process; a test that leaves either behind
-- fails with an error naming what it left. Leftovers are then cleaned up
-- so one bad test does not spoil the next.
local busted = require "busted"
local core = require "unixipc.core"

local function mypid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return pid
end

local PID = mypid()

-- children of this process, zombies included: {pid = state}
local function children()
  local kids = {}
  local f = io.open(("/proc/%d/task/%d/children"):format(PID, PID))
  if not f then return kids end
  local line = f:read("*a") or ""
  f:close()
  for pid in line:gmatch("%d+") do
    local st = io.open(("/proc/%s/stat"):format(pid))
    local state = st and st:read("*l"):match("^%d+ %b() (%S)") or "?"
    if st then st:close() end
    kids[tonumber(pid)] = state
  end
  return kids
end

local before, kidsbefore

busted.subscribe({ "test", "start" }, function()
  collectgarbage()
  before = core._openfds()
  kidsbefore = children()
  return nil, true
end)

busted.subscribe({ "test", "end" }, function(element)
  local after = core._openfds()
  local leaks = {}
  for fd, target in pairs(after) do
    if before[fd] == nil then leaks[#leaks + 1] = ("fd %d (%s)"):format(fd, target) end
  end
  local orphans = {}
  for pid, state in pairs(children()) do
    if not kidsbefore[pid] then orphans[#orphans + 1] = ("pid %d (state %s)"):format(pid, state) end
  end
  if #orphans > 0 and core.waitpid then
    for _, o in ipairs(orphans) do
      local pid = tonumber(o:match("%d+"))
      if core.kill then core.kill(pid, "KILL") end
      core.waitpid(pid)
    end
  end
  collectgarbage()
  if #leaks > 0 or #orphans > 0 then
    table.sort(leaks)
    local msg = {}
    if #leaks > 0 then msg[#msg + 1] = "left descriptors open: " .. table.concat(leaks, ", ") end
    if #orphans > 0 then msg[#msg + 1] = "left children unreaped: " .. table.concat(orphans, ", ") end
    error(("spec hygiene: '%s' %s"):format(element.name, table.concat(msg, "; ")), 0)
  end
  return nil, true
end)
