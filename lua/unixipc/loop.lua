-- unixipc.loop: a small scheduler. A task is a coroutine; inside a task,
-- every unixipc call that would wait hands its wait to this loop (the C
-- core calls the waiter installed below, see csrc/wait.c) and the other
-- tasks run meanwhile. Code written in blocking style serves many peers.
--
--   local loop = require "unixipc.loop"
--   loop.spawn(function() ... srv:accept() ... conn:recv() ... end)
--   loop.run()
--
-- Readiness comes from one ipc.pollset keyed by descriptor number: a
-- descriptor stays registered after its waiter woke (tasks tend to wait on
-- the same one again) and leaves the set the first time it is reported
-- with nobody waiting, so a wait costs one poll(2) and the work of the
-- tasks that are ready. Deadlines sit in a binary heap.
local core = require "unixipc.core"
local check = require "unixipc.check"

local create, resume, yield, running, costatus, coclose =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status,
  coroutine.close
local type, error, next, pairs, select, setmetatable, tostring, pcall =
  type, error, next, pairs, select, setmetatable, tostring, pcall
local traceback = debug.traceback
local find, format = string.find, string.format
local pack, unpack = table.pack, table.unpack
local monotime = core.monotime
local ETIMEDOUT = core.errno.ETIMEDOUT

local M = {}

local WAIT = {}     -- a task yields (WAIT, fd, events, deadline): wake it on readiness or time
local SUSPEND = {}  -- a task yields SUSPEND: something else wakes it (a join)
local CANCEL = setmetatable({}, { __tostring = function() return "cancelled" end })

-- ---- state (one loop per Lua state) ------------------------------------

local pset                 -- ipc.pollset, made on first need
local fdwaiters = {}       -- fd -> {[task] = events} (kept once made: no churn)
local nfdwait = 0          -- tasks waiting on a descriptor
local registered = {}      -- fd -> the events the pollset has for it
local heap, nheap, seq = {}, 0, 0 -- timers: {at =, seq =, task =}
local runq, nrunq = {}, 0  -- tasks to resume, in order
local spare = {}           -- the other run queue: the two take turns
local live = 0             -- tasks not finished
local current              -- the task running now
local inrun = false

local Task = {}
Task.__index = Task
Task.__name = "unixipc.task"

-- ---- timers -------------------------------------------------------------

local function before(a, b)
  return a.at < b.at or (a.at == b.at and a.seq < b.seq)
end

local function heappush(e)
  nheap = nheap + 1
  local i = nheap
  while i > 1 do
    local p = i // 2
    local pe = heap[p]
    if not before(e, pe) then break end
    heap[i] = pe
    i = p
  end
  heap[i] = e
end

local function heappop()
  local top, last = heap[1], heap[nheap]
  heap[nheap] = nil
  nheap = nheap - 1
  if nheap > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > nheap then break end
      if c < nheap and before(heap[c + 1], heap[c]) then c = c + 1 end
      if not before(heap[c], last) then break end
      heap[i] = heap[c]
      i = c
    end
    heap[i] = last
  end
  return top
end

-- ---- waking -----------------------------------------------------------------

local function push(t)
  nrunq = nrunq + 1
  runq[nrunq] = t
end

-- the union of what the waiters of fd want, as poll letters ("" for none)
local function union(w)
  local r, wr, p = false, false, false
  for _, ev in next, w do
    if ev == "r" then
      r = true
      goto continue
    end
    if find(ev, "r", 1, true) then r = true end
    if find(ev, "w", 1, true) then wr = true end
    if find(ev, "p", 1, true) then p = true end
    ::continue::
  end
  return (r and "r" or "") .. (wr and "w" or "") .. (p and "p" or "")
end

local function interest(fd)
  local w = fdwaiters[fd]
  local want = w and union(w) or ""
  if want == registered[fd] then return end
  if want == "" then
    pset:remove(fd)
    registered[fd] = nil
  else
    pset:add(fd, want)
    registered[fd] = want
  end
end

-- forget what t waits for, and queue it with val for its yield
local function wake(t, val)
  local fd = t.fd
  if fd then
    fdwaiters[fd][t] = nil
    nfdwait = nfdwait - 1
    t.fd = nil
  end
  if t.timer then
    t.timer.task = nil -- a dead heap entry, dropped when it comes up
    t.timer = nil
  end
  if t.joining then
    t.joining.joiners[t] = nil
    t.joining = nil
  end
  t.state, t.val = "ready", val
  push(t)
end

local function register(t, fd, ev, deadline)
  t.state = "waiting"
  if fd and fd >= 0 then
    local w = fdwaiters[fd]
    if not w then
      w = {}
      fdwaiters[fd] = w
    end
    w[t] = ev
    t.fd = fd
    nfdwait = nfdwait + 1
    local reg = registered[fd]
    if reg ~= ev and (reg == nil or union(w) ~= reg) then
      if not pset then pset = core.pollset() end
      interest(fd)
    end
  end
  if deadline then
    seq = seq + 1
    local e = { at = deadline, seq = seq, task = t }
    t.timer = e
    heappush(e)
  end
end

-- ---- running tasks ------------------------------------------------------------

local function finish(t, state, a, b)
  t.state = state
  live = live - 1
  if state == "done" then t.results = a else t.err = a end
  t.co = nil
  local js = t.joiners
  t.joiners = nil
  local joined = false
  if js then
    for j in pairs(js) do
      j.joining = nil
      wake(j, true)
      joined = true
    end
  end
  if state == "failed" and not joined then error(b, 0) end
end

local function after(t, ok, a, ...)
  if a == WAIT and ok then return register(t, ...) end -- the common case first
  if not ok then
    if a == CANCEL then return finish(t, "cancelled", "cancelled") end
    local tb = traceback(t.co, tostring(a))
    return finish(t, "failed", a, "task failed: " .. tb)
  end
  if costatus(t.co) == "dead" then return finish(t, "done", pack(a, ...)) end
  if a == SUSPEND then
    t.state = "suspended"
    return
  end
  -- a plain coroutine.yield(): the task runs again after the others
  t.state, t.val = "ready", nil
  push(t)
end

local function back(t, prev, ...)
  current = prev
  return after(t, ...)
end

local function runtask(t)
  local val = t.val
  t.val = nil
  t.state = "running"
  local prev = current
  current = t
  return back(t, prev, resume(t.co, val))
end

-- run what is ready now (tasks woken meanwhile wait for the next pass)
local function runready()
  local q, n = runq, nrunq
  runq, nrunq, spare = spare, 0, q
  for i = 1, n do
    local t = q[i]
    q[i] = nil
    if t.state == "ready" then runtask(t) end
  end
end

-- one wait: at most until `limit` (absolute, or nil), then wake what is due
local function poll(limit)
  local timeout
  if nrunq > 0 then
    timeout = 0
  else
    while nheap > 0 and heap[1].task == nil do heappop() end
    local at = nheap > 0 and heap[1].at
    if limit and (not at or limit < at) then at = limit end
    if at then
      timeout = at - monotime()
      if timeout < 0 then timeout = 0 end
    elseif nfdwait == 0 then
      error("loop: every task waits for another task, and nothing can wake them (deadlock)", 0)
    end
  end
  if pset and #pset > 0 then
    local ready, msg = pset:wait(timeout)
    -- poll(2) itself failed (ENOMEM): no task can be woken, so run says so
    if not ready then error("loop: " .. tostring(msg), 0) end
    for fd, letters in pairs(ready) do
      local w, woke = fdwaiters[fd], false
      if w then
        for t, ev in next, w do
          -- an error, a hang-up or a closed number wakes every waiter: its call will see it
          if ev == letters or find(letters, "[ehn]") or (find(ev, "r", 1, true) and find(letters, "r", 1, true))
            or (find(ev, "w", 1, true) and find(letters, "w", 1, true))
            or (find(ev, "p", 1, true) and find(letters, "p", 1, true)) then
            wake(t, letters)
            woke = true
          end
        end
      end
      -- reported with nobody to wake: stale, or wanted for less than it has
      if not woke then interest(fd) end
    end
  elseif timeout and timeout > 0 then
    core.sleep(timeout)
  end
  if nheap > 0 then
    local now = monotime()
    while nheap > 0 and heap[1].at <= now do
      local e = heappop()
      local t = e.task
      if t then
        t.timer = nil
        wake(t, false)
      end
    end
  end
end

-- ---- the waiter the C core calls (csrc/wait.c) --------------------------------

local prevwaiter

local function waiter(fd, ev, deadline)
  local t = current
  if t and t.co == running() then
    yield(WAIT, fd, ev, deadline)
    return true
  end
  if prevwaiter then return prevwaiter(fd, ev, deadline) end
  return false
end

prevwaiter = core._setwaiter(waiter)

-- ---- the public functions ------------------------------------------------------

-- spawn(fn, ...) -> task: fn(...) runs as a task once the loop runs
function M.spawn(fn, ...)
  if not check.callable(fn) then
    check.argerror(2, 1, "spawn", "function expected, got %s", type(fn))
  end
  local args, n = { ... }, select("#", ...)
  local t = setmetatable({ state = "ready" }, Task)
  t.co = create(function() return fn(unpack(args, 1, n)) end)
  live = live + 1
  push(t)
  return t
end

-- run the loop from outside any task until done() answers true (true), or
-- until `timeout` seconds have passed (false)
local function drive(done, timeout)
  local limit = timeout and monotime() + timeout
  inrun = true
  local ok, res = pcall(function()
    while not done() do
      runready()
      if done() then break end
      if limit and monotime() >= limit then return false end
      poll(limit)
    end
    return true
  end)
  inrun = false
  if not ok then error(res, 0) end
  return res
end

local function nolive() return live == 0 end

-- run([timeout]) -> true when no task is left | nil, "timeout", ETIMEDOUT
function M.run(timeout)
  check.seconds(timeout, "timeout", 1, "run", 2)
  if current then error("loop.run: called inside a task (the loop is already running)", 2) end
  if inrun then error("loop.run: the loop is already running", 2) end
  if not drive(nolive, timeout) then return nil, "timeout", ETIMEDOUT end
  return true
end

-- the task running now, or nil outside any task
function M.current()
  return current
end

-- sleep(seconds): in a task, the others run meanwhile; outside, ipc.sleep
function M.sleep(secs)
  if type(secs) ~= "number" or not (secs >= 0) then
    check.argerror(2, 1, "sleep", "seconds must be a non-negative number, got %s",
      type(secs) == "number" and tostring(secs) or type(secs))
  end
  if current and current.co == running() then
    yield(WAIT, -1, "", monotime() + secs)
    return true
  end
  return core.sleep(secs)
end

-- yield(): let every other ready task run once, then go on
function M.yield()
  if current and current.co == running() then yield() end
end

local EVENTS = { r = true, w = true, rw = true, wr = true, p = true, rp = true, pr = true,
  wp = true, pw = true, rwp = true }

-- wait(obj, events [, timeout]) -> letters that are ready | nil, "timeout", ETIMEDOUT
function M.wait(obj, ev, timeout)
  if not EVENTS[ev] then
    check.argerror(2, 2, "wait", "events must be letters r, w and p (\"r\", \"w\", \"rw\"), got %s",
      type(ev) == "string" and "'" .. ev .. "'" or type(ev))
  end
  check.seconds(timeout, "timeout", 3, "wait", 2)
  local fd = check.call("wait", 1, core._fd, obj)
  if current and current.co == running() then
    local letters = yield(WAIT, fd, ev, timeout and monotime() + timeout)
    if not letters then return nil, "timeout", ETIMEDOUT end
    return letters
  end
  local ready, msg, err = core.poll({ [fd] = ev }, timeout)
  if not ready then return nil, msg, err end
  local letters = ready[fd]
  if not letters then return nil, "timeout", ETIMEDOUT end
  return letters
end

-- ---- tasks ----------------------------------------------------------------------

local function results(t)
  if t.state == "done" then return true, unpack(t.results, 1, t.results.n) end
  if t.state == "cancelled" then return nil, "cancelled" end
  return nil, t.err
end

local function over(t)
  return t.state == "done" or t.state == "failed" or t.state == "cancelled"
end

-- status() -> "ready" | "running" | "waiting" | "suspended" | "done" | "failed" | "cancelled"
function Task:status()
  return self.state
end

-- join([timeout]) -> true, fn's results... | nil, error | nil, "cancelled" |
-- nil, "timeout", ETIMEDOUT. In a task it waits for the other one; outside
-- any task it runs the loop until this task has finished.
function Task:join(timeout)
  check.seconds(timeout, "timeout", 1, "join", 2)
  if over(self) then return results(self) end
  local me = current
  if me and me.co == running() then
    if me == self then error("join: a task cannot join itself", 2) end
    self.joiners = self.joiners or {}
    self.joiners[me] = true
    me.joining = self
    if timeout then
      yield(WAIT, -1, "", monotime() + timeout)
    else
      yield(SUSPEND)
    end
    if not over(self) then return nil, "timeout", ETIMEDOUT end
    return results(self)
  end
  if inrun then error("join: outside a task while the loop runs", 2) end
  if not drive(function() return over(self) end, timeout) then return nil, "timeout", ETIMEDOUT end
  return results(self)
end

-- cancel() -> true (false when it had already finished). The task's
-- coroutine is closed where it waits: its to-be-closed variables are
-- closed, and its joiners get nil, "cancelled". A task may cancel itself.
function Task:cancel()
  if over(self) then return false end
  if self == current and self.co == running() then error(CANCEL, 0) end
  if self.fd or self.timer or self.joining then
    wake(self, nil) -- drops its registrations; the queue entry is skipped below
  end
  self.state = "cancelling"
  local co = self.co
  local ok, err = coclose(co)
  finish(self, "cancelled", "cancelled")
  if not ok and err ~= CANCEL then
    error(format("cancel: the task failed while closing: %s", tostring(err)), 2)
  end
  return true
end

function Task:__tostring()
  return format("task (%s)", self.state)
end

-- tasks() -> how many tasks have not finished
function M.tasks()
  return live
end

M._VERSION = "unixipc.loop 1"
return M
