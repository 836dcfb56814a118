-- flock.lua: whole-file shared and exclusive locks with flock(2).
--
-- The C original opens a file, takes a shared lock, works on the file and
-- unlocks. Here a second process shows what the two modes mean: readers
-- share, a writer waits for everyone else to leave.
--
--   lua5.4 examples/flock.lua [file]      (default: a temporary file)
--
-- A flock belongs to the *open file description* (what open() returns),
-- not to the descriptor number and not to the process: dup() and fork()
-- copies share it. So the child opens the file itself, to be a separate
-- locker; a child that used the inherited descriptor would hold the very
-- same lock as its parent.
local ipc = require "unixipc"

local path = arg[1]
local temporary = not path
path = path or os.tmpname()

local function say(who, fmt, ...)
  io.write(who, ": ", fmt:format(...), "\n")
  io.stdout:flush() -- before fork and _exit, so no line is lost or doubled
end

local f = assert(ipc.open(path, "a+")) -- flock needs no write access; a+ creates the file
local shared <close> = assert(ipc.flock(f, "sh"))
say("parent", "shared lock taken on %s", temporary and "a temporary file" or path)

local r, w = assert(ipc.pipe())
local pid = assert(ipc.fork())
if pid == 0 then
  local ok, err = pcall(function()
    r:close()
    local g = assert(ipc.open(path, "r")) -- our own open file description
    local s = assert(ipc.flock(g, "sh", { wait = false }))
    say("child", "shared lock granted as well: readers share")
    s:release()
    local x, msg = ipc.flock(g, "ex", { wait = false })
    assert(not x, "exclusive lock granted while the parent reads?")
    say("child", "exclusive lock refused while the parent reads (%s)", msg)
    w:write("?") -- tell the parent we are about to wait
    x = assert(ipc.flock(g, "ex", { wait = 5 }))
    say("child", "exclusive lock taken once the parent let go")
    x:release()
  end)
  if not ok then io.stderr:write("child: ", tostring(err), "\n") end
  ipc._exit(ok and 0 or 1)
end

w:close()
assert(r:read(1))
r:close()
say("parent", "done reading, releasing the shared lock")
shared:release()
local _, how, code = ipc.waitpid(pid)
say("parent", "child ended: %s %d", how, code)
f:close()
if temporary then os.remove(path) end
os.exit(how == "exit" and code == 0 and 0 or 1)
