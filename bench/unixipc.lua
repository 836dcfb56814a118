-- unixipc versions of the bench loops. Usage: lua5.4 bench/unixipc.lua LOOP SECONDS
-- prints "ok OPS WALL CPU", or "na REASON" when the function is not built yet.
local ipc = require "unixipc"

local now = ipc.monotime
local loop, secs = arg[1], tonumber(arg[2])
local sockm = ipc._methods and ipc._methods.socket or {}

local H = dofile("bench/harness.lua")(now, secs)
local out = H.out

local function na(why)
  io.write("na ", why, "\n")
  os.exit(0)
end

local function need(ok, name)
  if not ok then na("not built (" .. name .. ")") end
end

local run = H.run

local msg64 = string.rep("x", 64)

local function child(fn)
  local pid = assert(ipc.fork())
  if pid == 0 then
    pcall(fn)
    ipc._exit(0)
  end
  return pid
end

local loops = {}

function loops.sendrecv()
  local a, b = assert(ipc.socketpair())
  run(100, function()
    a:send(msg64)
    b:recv(64)
  end)
end

function loops.bulk()
  local a, b = assert(ipc.socketpair())
  local chunk = string.rep("b", 65536)
  local pid = child(function()
    b:close()
    while a:sendall(chunk) do end
  end)
  a:close()
  H.start()
  local bytes, t0, el = 0, now()
  repeat
    for _ = 1, 16 do
      bytes = bytes + #assert(b:recv(65536))
    end
    el = now() - t0
  until el >= secs
  b:close()
  ipc.waitpid(pid)
  out(bytes, el)
end

function loops.pingpong()
  local a, b = assert(ipc.socketpair())
  local pid = child(function()
    b:close()
    while true do
      local s = a:recv(64)
      if not s or not a:send(s) then break end
    end
  end)
  a:close()
  run(100, function()
    b:send(msg64)
    b:recv(64)
  end)
  b:close()
  ipc.waitpid(pid)
end

function loops.fdpass()
  need(sockm.sendmsg and sockm.recvmsg, "sendmsg/recvmsg")
  local a, b = assert(ipc.socketpair())
  local f = assert(ipc.open("/dev/null", "r"))
  local m = { data = "x", fds = { f } }
  run(100, function()
    assert(a:sendmsg(m))
    local _, fds = b:recvmsg()
    fds[1]:close()
  end)
end

local function lockfile()
  local path = os.tmpname()
  local f = assert(ipc.open(path, "w"))
  os.remove(path)
  return f
end

function loops.flock()
  need(ipc.flock, "ipc.flock")
  local f = lockfile()
  run(100, function()
    local l = ipc.flock(f, "ex")
    l:release()
  end)
end

function loops.fcntl()
  need(ipc.lock, "ipc.lock")
  local f = lockfile()
  run(100, function()
    local l = ipc.lock(f) -- the defaults: a write lock of the whole file, waiting
    l:release()
  end)
end

function loops.fork()
  local fork, exit, waitpid = ipc.fork, ipc._exit, ipc.waitpid
  run(10, function()
    local pid = fork()
    if pid == 0 then exit(0) end
    waitpid(pid)
  end)
end

function loops.signal()
  need(ipc.signalfd, "ipc.signalfd")
  local sig = assert(ipc.signalfd({ "USR1" }))
  local kill, me = ipc.kill, ipc.getpid()
  run(100, function()
    kill(me, "USR1")
    sig:read()
  end)
end

function loops.channel()
  need(ipc.channel, "ipc.channel")
  local a, b = assert(ipc.socketpair())
  local ca, cb = ipc.channel(a), ipc.channel(b)
  local value = { id = 1, name = "bench", ok = true, list = { 1, 2, 3 } }
  run(100, function()
    ca:send(value)
    cb:recv()
  end)
end

-- the Python idiom: a set registered once (ipc.pollset), the ready one in
-- the middle as in C and Python
function loops.poll()
  need(ipc.pollset, "ipc.pollset")
  local ps, keep = ipc.pollset(), {}
  local r
  for i = 1, 500 do
    if i == 251 then
      local w
      w, r = assert(ipc.socketpair())
      w:send("x")
      keep[#keep + 1] = w
      ps:add(r, "r")
    end
    local a, b = assert(ipc.socketpair())
    ps:add(a, "r")
    ps:add(b, "r")
    keep[#keep + 1] = a
  end
  run(10, function()
    local ready = ps:wait(0)
    assert(ready[r] == "r")
  end)
end

-- the same set passed to ipc.poll as a table on every call
function loops.polltable()
  local set, keep = {}, {}
  for _ = 1, 500 do
    local a, b = assert(ipc.socketpair())
    set[a], set[b] = "r", "r"
    keep[#keep + 1] = a
  end
  local w, r = assert(ipc.socketpair())
  w:send("x")
  set[r] = "r"
  local poll = ipc.poll
  run(10, function()
    local ready = poll(set, 0)
    assert(ready[r] == "r")
  end)
end

-- two tasks of unixipc.loop ping-pong one byte over a socketpair, one process
function loops.taskswitch()
  local L = require "unixipc.loop"
  local a, b = assert(ipc.socketpair())
  L.spawn(function()
    while b:recv(1) == "x" do b:send("x") end
  end)
  L.spawn(function()
    run(100, function()
      a:send("x")
      a:recv(1)
    end)
    a:send("q")
  end)
  L.run()
end

-- ---- issue 14 (appended) ----------------------------------------------------

-- run /bin/true and wait for it
function loops.popen()
  need(ipc.popen, "ipc.popen")
  local popen, argv = ipc.popen, { "/bin/true" }
  run(1, function()
    local c = popen(argv)
    c:wait()
  end)
end

-- the same with Lua's own os.execute (a shell, through system(3))
function loops.execute()
  local execute = os.execute
  run(1, function() execute("/bin/true") end)
end

-- spawn + wait through the pidfd (p:wait waits on the child's pidfd)
function loops.pidfd()
  need(ipc.pidfd, "ipc.pidfd")
  local spawn = ipc.spawn
  local function nothing() end
  run(10, function()
    local p = spawn(nothing)
    p:wait()
    p.chan:close()
  end)
end

-- values/s of 64 MiB received from a child sending them over a channel:
-- through a sealed memfd (the default above 1 MiB) or the socket buffer
local function bigvalue(memfd)
  local a, b = assert(ipc.socketpair())
  local value = string.rep("v", 64 << 20)
  local opts = { maxsize = 65 << 20, memfd = memfd }
  local pid = child(function()
    b:close()
    local ca = ipc.channel(a, opts)
    while ca:send(value) do end
  end)
  a:close()
  local cb = ipc.channel(b, opts)
  H.start()
  local ops, t0, el = 0, now()
  repeat
    local v = cb:recv()
    assert(#v == #value)
    ops = ops + 1
    el = now() - t0
  until el >= secs
  cb:close()
  ipc.kill(pid, "KILL")
  ipc.waitpid(pid)
  out(ops, el)
end

function loops.bigmemfd()
  need(ipc.memfd, "ipc.memfd")
  bigvalue(nil)
end

function loops.bigsocket()
  need(ipc.memfd, "channel memfd option")
  bigvalue(false)
end

local fn = loops[loop]
if not fn or not secs then
  io.stderr:write("usage: lua5.4 bench/unixipc.lua LOOP SECONDS\n")
  os.exit(2)
end
fn()
