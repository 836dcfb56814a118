-- EMFILE, ENFILE and ENOMEM from the calls that make descriptors (and
-- from recvmsg, which receives them): a clean nil, message, errno, no
-- descriptor left behind, and the object or message not lost. The driver
-- makes the first call of the syscall after mark() fail with the errno
-- named in FAULT_ERRNO (without running it).
--   FAULT_ERRNO=EMFILE lua5.4 check/faults/exhaust.lua CASE
local F = dofile("check/faults/lib.lua")
local ipc, check, mark = F.ipc, F.check, F.mark
local ERR = os.getenv("FAULT_ERRNO") or "EMFILE"
local errno = ipc.errno[ERR]

local cases = {}

-- run fn after mark(): nil, "op: <strerror>", errno, and the same
-- descriptors open before and after
local function fails(op, fn)
  collectgarbage()
  local before = F.nfds()
  mark()
  local r, msg, err = fn()
  check(r == nil, op .. " returns nil", r)
  check(type(msg) == "string" and msg:find(op .. ": ", 1, true) == 1 and msg:find(ipc.strerror(errno), 1, true) ~= nil,
    ("the message names the operation and the error (%s)"):format(msg), msg)
  check(err == errno, ("errno is %s"):format(ERR), err)
  collectgarbage()
  check(F.nfds() == before, "no descriptor left behind", F.nfds() - before)
end

cases.socket = function() fails("socket", function() return ipc.socket("unix", "stream") end) end
cases.socketpair = function() fails("socketpair", function() return ipc.socketpair() end) end
cases.pipe2 = function() fails("pipe", function() return ipc.pipe() end) end
cases.listen = function() -- the Lua layer passes the failure on
  fails("socket", function() return ipc.listen("127.0.0.1:0") end)
end
cases.spawn = function()
  fails("socketpair", function() return ipc.spawn(function() end) end)
end

cases.openat = function()
  local dir = F.tmpdir()
  fails("open " .. dir .. "/f", function() return ipc.open(dir .. "/f", "w") end)
  os.execute("rm -rf " .. dir)
end

cases.signalfd4 = function()
  local function blocked()
    local f = io.open("/proc/self/status")
    local m = f:read("a"):match("SigBlk:%s*(%x+)")
    f:close()
    return m
  end
  local before = blocked()
  fails("signalfd", function() return ipc.signalfd({ "USR1" }) end)
  check(blocked() == before, "the signal mask is put back")
  local sig = ipc.signalfd({ "USR1" })
  check(sig ~= nil, "USR1 can be bridged again afterwards")
  if sig then sig:close() end
end

cases.accept4 = function()
  local srv = assert(ipc.listen("@unixipc-exhaust-" .. ipc.getpid()))
  local c = assert(ipc.connect("@unixipc-exhaust-" .. ipc.getpid()))
  c:sendall("waiting")
  fails("accept", function() return srv:accept() end)
  srv:settimeout(1) -- bounded, for the driver's run without faults
  local conn = srv:accept()
  check(conn ~= nil and conn:recv(10) == "waiting", "the pending connection is accepted next time")
  if conn then conn:close() end
  c:close()
  srv:close()
end

cases.recvmsg = function()
  local a, b = ipc.socketpair("seqpacket")
  local r, w = ipc.pipe()
  assert(a:sendmsg { data = "msg", fds = { w } })
  w:close()
  fails("recvmsg", function() return b:recvmsg() end)
  b:settimeout(1) -- bounded, for the driver's run without faults
  r:settimeout(1)
  local data, fds = b:recvmsg()
  check(data == "msg" and #fds == 1, "the message and its descriptor are still there")
  if fds and fds[1] then fds[1]:write("x"); fds[1]:close() end
  check(r:read(1) == "x", "the descriptor works")
  r:close(); a:close(); b:close()
end

-- the children of this process (zombies too)
local function nkids()
  local me = ipc.getpid()
  local f = io.open(("/proc/%d/task/%d/children"):format(me, me))
  local n = 0
  if f then
    for _ in f:read("a"):gmatch("%d+") do n = n + 1 end
    f:close()
  end
  return n
end

-- a child that lives until the returned pipe end is closed
local function gated()
  local r, w = ipc.pipe()
  local pid = F.later(0, function() w:close(); r:read(1) end)
  r:close()
  return pid, w
end

cases.pidfd_open = function()
  local pid, gate = gated()
  fails("pidfd_open", function() return ipc.pidfd(pid) end)
  local h = ipc.pidfd(pid)
  check(h ~= nil, "a handle can be had afterwards")
  if h then h:close() end
  gate:close()
  check(F.reap(pid), "the child finished")
end

-- spawn's p:wait with no pidfd to be had: it waits with waitpid instead
cases.pidfd_fallback = function()
  local p = assert(ipc.spawn(function() end))
  collectgarbage()
  local before = F.nfds()
  mark()
  local ok, how, code = p:wait()
  check(ok == true and how == "exit" and code == 0, "p:wait still returns the status", ok, how, code)
  collectgarbage()
  check(F.nfds() == before, "no descriptor left behind", F.nfds() - before)
  check(nkids() == 0, "the child is reaped", nkids())
  p.chan:close()
end

cases.eventfd2 = function()
  fails("eventfd", function() return ipc.eventfd(1) end)
  local e = ipc.eventfd(1)
  check(e ~= nil and e:take() == 1, "an eventfd can be made afterwards")
  if e then e:close() end
end

cases.memfd_create = function()
  fails("memfd_create", function() return ipc.memfd("x") end)
  local m = ipc.memfd("x")
  check(m ~= nil, "a memfd can be made afterwards")
  if m then m:close() end
end

-- a channel that sends its values in memfds: the send fails whole, the
-- channel goes on, and the peer never sees any of the failed value
cases.channel_memfd = function()
  local a, b = ipc.socketpair()
  local ca, cb = ipc.channel(a, { memfd = 0 }), ipc.channel(b, { memfd = 0 })
  fails("channel: memfd_create", function() return ca:send({ "first" }) end)
  b:settimeout(1) -- bounded, for the driver's run without faults
  local sent = ca:send({ "second" })
  check(sent == true, "the channel still sends", sent)
  local v = cb:recv()
  check(type(v) == "table" and v[1] == "second", "the peer gets the second value, nothing of the first",
    type(v) == "table" and v[1] or v)
  ca:close(); cb:close()
end

-- clone (popen) and fork (spawn) refused: nothing made is left, no child
cases.popen_clone = function()
  fails("clone", function() return ipc.popen({ "true" }, { stdin = "pipe", stdout = "pipe" }) end)
  check(nkids() == 0, "no child", nkids())
end

cases.spawn_fork = function()
  fails("fork", function() return ipc.spawn(function() end) end)
  check(nkids() == 0, "no child", nkids())
end

-- pipe2 inside popen: one of the program's pipes, or _spawn's own
-- report pipe (no pipes asked for)
cases.popen_pipe = function()
  fails("pipe", function() return ipc.popen({ "true" }, { stdout = "pipe" }) end)
  check(nkids() == 0, "no child", nkids())
end

cases.popen_errpipe = function()
  fails("pipe", function() return ipc.popen({ "true" }, { stdin = false, stdout = false }) end)
  check(nkids() == 0, "no child", nkids())
  local c = ipc.popen({ "true" }, { stdin = false, stdout = false })
  check(c ~= nil and c:wait() == true, "a program can be run afterwards")
end

-- poll(2) failing under unixipc.loop: loop.run raises that failure, in
-- the poll's own words, and the loop goes on afterwards
cases.loop_poll = function()
  local loop = require "unixipc.loop"
  local r, w = ipc.pipe()
  local got
  loop.spawn(function() got = r:read(1) end)
  mark()
  local ok, err = pcall(loop.run, 5)
  check(not ok and tostring(err):find("poll: " .. ipc.strerror(errno), 1, true) ~= nil,
    "loop.run raises the failure of poll", ok, err)
  w:write("x")
  local again = loop.run(5)
  check(again == true and got == "x", "the loop goes on afterwards", again, got)
  r:close(); w:close()
end

F.run(cases, ...)
