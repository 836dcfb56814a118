-- Descriptor passing, the receiving side: accept one connection, receive a
-- descriptor with recvmsg and read the file through it.
-- (reference 003: the recvmsg + SCM_RIGHTS receiver)
--
--   lua5.4 examples/fdpass_receiver.lua SOCKET_PATH
--       waits (10 s at most) for one fdpass_sender.lua
--   lua5.4 examples/fdpass_receiver.lua
--       the whole demo: makes a test file and a socket in a temporary
--       directory, starts fdpass_sender.lua as a second process, and prints
--       what both sides did
local ipc = require "unixipc"

local path = arg[1]
local demo = not path
local dir, testfile, sender

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

if demo then
  local p = assert(io.popen("mktemp -d /tmp/unixipc-fdpass.XXXXXX"))
  dir = p:read("l")
  p:close()
  path = dir .. "/unix_sock"
  testfile = dir .. "/testfile.txt"
  local f = assert(io.open(testfile, "w"))
  f:write("hello from testfile.txt")
  f:close()
end

local srv = assert(ipc.listen(path))
srv:settimeout(10)

if demo then
  -- the sender is a separate program: nothing is shared but the socket
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  sender = assert(io.popen(("%s %s %s %s"):format(arg[-1] or "lua5.4",
    sh(here .. "/fdpass_sender.lua"), sh(path), sh(testfile))))
end

local conn = assert(srv:accept())
conn:settimeout(10)
local data, fds, info = assert(conn:recvmsg())
if #fds == 1 and not info.ctruncated then
  local fd = fds[1]
  print(("Received file descriptor: %d (%s)"):format(fd:fileno(), tostring(fd)))
  local text = assert(fd:read(100))
  print("Read from file descriptor: " .. text)
  fd:close()
else
  io.stderr:write(("No file descriptor received (%d bytes of data)\n"):format(#data))
end
conn:close()
srv:close()

if demo then
  io.write("sender said: ", sender:read("a"))
  local ok = sender:close()
  os.remove(testfile)
  os.remove(path)
  os.remove(dir)
  if not ok then os.exit(1) end
else
  os.remove(path)
end
