-- check/faults/lib.lua: what the fault-injection scripts share. A script
-- sets things up, calls mark() right before the operation under test (the
-- driver, check/faults.sh, injects the fault into the system calls that
-- follow the mark), checks the result and prints one "ok" line per check.
-- Any failed check prints "FAIL ..." and the script exits 1.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local ipc = require "unixipc"

local M = { ipc = ipc, failed = 0 }

-- the driver finds this write(2) in the trace; what follows is tested
function M.mark()
  io.stderr:write("MARK\n")
end

function M.check(cond, what, ...)
  if cond then
    print("ok " .. M.case .. ": " .. what)
  else
    M.failed = M.failed + 1
    print("FAIL " .. M.case .. ": " .. what .. " -- got: " .. table.concat(
      (function(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end return t end)(...), ", "))
  end
end

function M.nfds()
  local n = 0
  for _ in pairs(ipc._openfds()) do n = n + 1 end
  return n
end

function M.tmpdir()
  local p = io.popen("mktemp -d /tmp/unixipc-faults.XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

-- a child that runs fn after `delay` seconds and always ends in _exit
function M.later(delay, fn)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok = pcall(function() ipc.sleep(delay); fn() end)
    ipc._exit(ok and 0 or 1)
  end
  return pid
end

function M.reap(pid)
  local _, how, code = ipc.waitpid(pid)
  return how == "exit" and code == 0
end

function M.run(cases, name)
  M.case = name
  local f = cases[name]
  if not f then print("FAIL " .. tostring(name) .. ": no such case"); os.exit(2) end
  local ok, err = pcall(f)
  if not ok then M.check(false, "the case ran to its end", err) end
  os.exit(M.failed == 0 and 0 or 1)
end

return M
