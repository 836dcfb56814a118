-- fcntl_lock.lua: POSIX record locks with fcntl(2) (F_SETLK, F_GETLK).
--
-- The C original takes a write lock on the whole file without waiting
-- (F_SETLK, l_len = 0), works on the file, then unlocks with F_UNLCK. Here
-- a second process also asks who holds what (F_GETLK), and shows that record
-- locks cover byte ranges: the rest of the file stays free.
--
--   lua5.4 examples/fcntl_lock.lua [file]      (default: a temporary file)
--
-- Record locks belong to the process: a fork child does not inherit them,
-- and the process loses them all as soon as it closes *any* descriptor of
-- the file. For locks that behave like flock but with ranges, pass
-- ofd = true (Linux open-file-description locks).
local ipc = require "unixipc"

local path = arg[1]
local temporary = not path
path = path or os.tmpname()

local function say(who, fmt, ...)
  io.write(who, ": ", fmt:format(...), "\n")
  io.stdout:flush()
end

local function show(t)
  if not t then return "free" end
  local range = t.len == 0 and ("%d to EOF"):format(t.start)
    or ("%d-%d"):format(t.start, t.start + t.len - 1)
  return ("%s lock on bytes %s held by pid %d"):format(t.type, range, t.pid)
end

local f = assert(ipc.open(path, "a+")) -- a write lock needs a descriptor open for writing

-- the original program: a whole-file write lock, without waiting
local l, msg = ipc.lock(f, { type = "write", start = 0, len = 0, wait = false })
if not l then
  io.stderr:write("fcntl: ", msg, "\n")
  os.exit(1)
end
say("parent", "write lock on the whole file")
assert(f:write("record locks are advisory\n"))

-- another process looks: who holds a conflicting lock?
local function child(fn)
  local pid = assert(ipc.fork())
  if pid == 0 then
    local ok, err = pcall(fn)
    if not ok then io.stderr:write("child: ", tostring(err), "\n") end
    ipc._exit(ok and 0 or 1)
  end
  local _, how, code = ipc.waitpid(pid)
  assert(how == "exit" and code == 0, "child failed")
end

child(function()
  local g = assert(ipc.open(path, "r+"))
  say("child", "testlock: %s", show(ipc.testlock(g, { type = "read" })))
  local x, why = ipc.lock(g, { type = "read", wait = false })
  assert(not x)
  say("child", "read lock refused (%s)", why)
end)

-- unlock (F_UNLCK), then lock only bytes 0-9
assert(l:release())
say("parent", "unlocked; now a write lock on bytes 0-9 only")
l = assert(ipc.lock(f, { type = "write", start = 0, len = 10 }))

child(function()
  local g = assert(ipc.open(path, "r+"))
  say("child", "testlock 0-19: %s", show(ipc.testlock(g, { start = 0, len = 20 })))
  local x = assert(ipc.lock(g, { type = "write", start = 10, len = 10, wait = false }))
  say("child", "bytes 10-19 are free: locked them too")
  x:release()
  local y, why = ipc.lock(g, { type = "write", start = 5, len = 10, wait = false })
  assert(not y)
  say("child", "bytes 5-14 overlap the parent's lock: refused (%s)", why)
end)

l:release()
f:close()
say("parent", "done")
if temporary then os.remove(path) end
