-- A tour of unixipc that finishes on its own (make demo):
-- workers and channels, descriptors crossing processes, SIGCHLD through a
-- descriptor, locks contended by several processes, and urgent TCP data.
local ipc = require "unixipc"

local function step(title) print(("\n== %s"):format(title)) end

-- 1. a worker process and a channel carrying Lua values
step("spawn a worker and talk to it over a channel")
local worker = assert(ipc.spawn(function(chan)
  while true do
    local job = chan:recv()
    if job == nil then break end
    chan:send({ id = job.id, sum = job.a + job.b, by = ipc.getpid() })
  end
end))
for id = 1, 3 do
  worker.chan:send({ id = id, a = id * 10, b = id })
  local r = assert(worker.chan:recv())
  print(("job %d: sum %d computed by pid %d"):format(r.id, r.sum, r.by))
end

-- 2. a descriptor crosses into the worker's process with a frame
step("pass a pipe's write end to another process")
local r, w = ipc.pipe()
local writer = assert(ipc.spawn(function(chan)
  local _, fds = chan:recv()
  fds[1]:write("written by pid " .. ipc.getpid() .. " through a passed descriptor\n")
  fds[1]:close()
end))
writer.chan:send("here is a pipe", { w })
w:close()
io.write(assert(r:read(200)))
r:close()

-- 3. SIGCHLD through a pollable descriptor, and reap
step("children exit; SIGCHLD arrives through a signalfd; reap collects them")
worker.chan:send(nil) -- ends the worker's loop
assert(worker:wait())
assert(writer:wait())
local sig = assert(ipc.signalfd({ "CHLD" }))
for code = 3, 5 do
  if ipc.fork() == 0 then ipc._exit(code) end
end
local reaped = 0
while reaped < 3 do
  local ev = assert(sig:read(5)) -- several exits may coalesce into one SIGCHLD
  for _, st in ipairs(ipc.reap()) do
    reaped = reaped + 1
    print(("pid %d ended: %s %d (SIGCHLD from pid %d)"):format(st.pid, st.how, st.code, ev.pid))
  end
end
sig:close()

-- 4. four processes increment one counter under an exclusive flock
step("four processes, 250 increments each, one flock")
local path = os.tmpname()
local f = assert(io.open(path, "w"))
f:write("0")
f:close()
local procs = {}
for i = 1, 4 do
  procs[i] = assert(ipc.spawn(function()
    local fd = assert(ipc.open(path, "r+"))
    for _ = 1, 250 do
      local l <close> = assert(ipc.flock(fd, "ex"))
      fd:seek("set")
      local n = tonumber(fd:read(32))
      fd:seek("set")
      fd:write(tostring(n + 1))
    end
    fd:close()
  end))
end
for _, p in ipairs(procs) do assert(p:wait()) end
f = assert(io.open(path))
print("counter: " .. f:read("*a") .. " (expected 1000)")
f:close()
os.remove(path)

-- 5. urgent data over TCP loopback
step("TCP out-of-band data and the urgent mark")
local srv = assert(ipc.listen("127.0.0.1:0"))
local c = assert(ipc.connect(srv:getsockname()))
local conn = assert(srv:accept())
c:send("abc")
c:send("!", "oob")
c:send("def")
ipc.sleep(0.05)
print("normal bytes before the mark: " .. conn:recv(100))
print("at the urgent mark: " .. tostring(conn:atmark()))
print("the urgent byte: " .. conn:recv(1, "oob"))
print("after it: " .. conn:recv(100))
c:close()
conn:close()
srv:close()

worker.chan:close()
writer.chan:close()
print("\ndone")
