-- unixipc.server's worker side: what a worker process runs (see
-- lua/unixipc/server.lua for the master, the modes and the messages).
-- The classic worker serves one connection at a time (shared mode: accept
-- lock -> poll -> accept -> handler; passfd mode: a connection from the
-- master, the handler, "one slot free"); with concurrency > 1 the worker
-- runs unixipc.loop, one task per connection.
local ipc = require "unixipc"

local error, xpcall, tostring, pairs, ipairs = error, xpcall, tostring, pairs, ipairs
local fmt, remove = string.format, table.remove
local huge = math.huge
local traceback = debug.traceback
local monotime, getpid = ipc.monotime, ipc.getpid

local errno = ipc.errno
-- accept failures that only mean "nothing for you this time": another
-- worker took the connection, or the client gave up before accept
local TRANSIENT = {}
for _, name in ipairs({ "EAGAIN", "EWOULDBLOCK", "EINTR", "ECONNABORTED", "EPROTO" }) do
  if errno[name] then TRANSIENT[errno[name]] = true end
end

local BATCH = 16 -- connections a worker with concurrency accepts per turn of the accept lock

local M = { TRANSIENT = TRANSIENT }

local W -- the worker's state, in a worker process only

-- server.stopping() -> true once this worker has been told to finish (HUP,
-- TERM, an upgrade, TTOU, its maxrequests): a keep-alive handler answers
-- the request in hand and closes. false outside a worker.
function M.stopping()
  if not W then return false end
  if W.closing then return true end
  if W.classic then -- one connection at a time: is the master's end of stream waiting?
    local ready = ipc.poll({ [W.chan] = "r" }, 0)
    if ready[W.chan] then W.closing = true end
  end
  return W.closing
end

local function peername(addr)
  return addr and tostring(addr) or "?"
end

-- run the handler on one connection; errors are logged, never fatal
local function serve(S, conn, addr)
  local ok, err = xpcall(S.handler, traceback, conn, addr)
  if not ok then S.log(fmt("handler error (worker %d): %s", getpid(), tostring(err))) end
  conn:close()
end

local sleep = ipc.sleep

-- an accept failure that is not "someone else took it": log and breathe, so
-- EMFILE and friends do not turn into a busy loop
local function accepterror(S, msg, err)
  if TRANSIENT[err] then return end
  S.log(fmt("accept failed in worker %d: %s", getpid(), tostring(msg)))
  sleep(0.05)
end

-- the classic worker, shared mode: lock -> poll -> accept -> unlock -> handler
local function sharedworker(S, chan, limit)
  local lockfd, timed = S.lockfd, S.timeout ~= nil
  local set, served = { [chan] = "r" }, 0
  for _, l in ipairs(S.listeners) do set[l] = "r" end
  while true do
    local lk
    if lockfd then
      local msg, err
      lk, msg, err = ipc.lock(lockfd, { type = "write" })
      if not lk then error(fmt("accept lock: %s (errno %s)", tostring(msg), tostring(err)), 0) end
    end
    local ready = ipc.poll(set)
    if ready[chan] then -- the master closed its end: stop
      if lk then lk:release() end
      return
    end
    local conn, addr, err, srv
    for _, l in ipairs(S.listeners) do
      if ready[l] then
        srv = l
        conn, addr, err = l:accept()
        if conn then break end
      end
    end
    if lk then lk:release() end
    if conn then
      if timed then chan:send({ "busy", peername(addr) }) end
      serve(S, conn, addr)
      if timed then chan:send("done") end
      served = served + 1
      if limit and served >= limit then
        chan:send("leaving")
        return
      end
    elseif srv then
      accepterror(S, addr, err)
    end
  end
end

-- the classic worker, passfd mode: a connection from the master, the
-- handler, "one slot free"; the master stops sending at the limit
local function passfdworker(S, chan)
  while true do
    local msg, fds = chan:recv()
    if msg == nil then return end -- end of stream: the master wants us gone
    for i = 2, #fds do fds[i]:close() end
    local conn = fds[1]
    if conn then serve(S, conn, conn:getpeername() or {}) end
    if not chan:send(1) then return end
  end
end

-- the worker with concurrency: unixipc.loop, one task per connection
local function taskworker(S, chan, limit)
  local loop = require "unixipc.loop"
  local n, passfd, timeout = S.concurrency, S.mode == "passfd", S.timeout
  local listeners, lockfd, log = S.listeners, S.lockfd, S.log
  local active, taken = 0, 0
  local running = {}          -- handler task -> {since =, peer =}
  local acceptor, control, watchdog
  local done = false          -- every task told to end

  -- messages to the master go out one at a time (a send may yield midway
  -- through a frame); freed slots add up while a send is under way
  local queue, sending, freed = {}, false, 0
  local function flush()
    if sending then return end
    sending = true
    while true do
      local msg
      if freed > 0 then
        msg, freed = freed, 0
      elseif queue[1] then
        msg = remove(queue, 1)
      else
        break
      end
      if not chan:send(msg) then queue = {} break end -- the master is gone: control sees it
    end
    sending = false
  end
  local function post(msg)
    queue[#queue + 1] = msg
    flush()
  end

  local function stop()
    done = true
    local me = loop.current()
    for _, t in ipairs({ acceptor, control, watchdog }) do
      if t and t ~= me then t:cancel() end
    end
  end

  local acceptloop

  -- a handler task has ended (returned, failed or been cancelled)
  local function finished(t)
    if not running[t] then return end
    running[t] = nil
    active = active - 1
    if passfd then freed = freed + 1 end
    if W.closing then
      if active == 0 then stop() end
    elseif not passfd and not acceptor and active < n then
      acceptor = loop.spawn(acceptloop)
    end
  end

  local function conntask(conn, addr)
    local c <close> = conn
    serve(S, c, addr)
    finished(loop.current())
    if passfd then flush() end
  end

  local function start(conn, addr)
    taken = taken + 1
    active = active + 1
    local t = loop.spawn(conntask, conn, addr)
    running[t] = { since = monotime(), peer = peername(addr) }
  end

  local function close()
    if W.closing then return end
    W.closing = true
    if acceptor and acceptor ~= loop.current() then acceptor:cancel() end
    acceptor = nil
    if active == 0 then stop() end
  end

  -- shared mode: while this worker has a free slot it waits for the
  -- listeners to be readable, then tries the accept lock (never waiting
  -- for it) and accepts what its free slots allow, BATCH at most before the
  -- other workers get a turn. Only workers with a free
  -- slot wait, and the least busy one tends to get there first: a worker
  -- that held the lock while it waited would take every connection up to
  -- its concurrency and leave the others idle. A full worker neither waits
  -- nor locks; the lock is never held across a wait or a handler.
  local waitset
  if #listeners > 1 then
    waitset = {}
    for _, l in ipairs(listeners) do waitset[l] = "r" end
  end
  acceptloop = function()
    while not W.closing and active < n do
      local ready, failed, leaving
      if waitset then ready = ipc.poll(waitset) else loop.wait(listeners[1], "r") end
      do
        local lk <close> = lockfd and ipc.lock(lockfd, { type = "write", wait = false }) or nil
        if lk or not lockfd then
          local turn = 0 -- at most BATCH per turn: in a burst the other workers get theirs
          for _, l in ipairs(listeners) do
            if not ready or ready[l] then
              while active < n and not leaving and turn < BATCH do
                turn = turn + 1
                local conn, addr, err = l:accept()
                if not conn then
                  if not TRANSIENT[err] then failed = addr end
                  break
                end
                start(conn, addr)
                leaving = limit and taken >= limit
              end
            end
          end
        end
      end
      if failed then
        log(fmt("accept failed in worker %d: %s", getpid(), tostring(failed)))
        loop.sleep(0.05) -- EMFILE and friends: no busy loop on them
      end
      if leaving then
        post("leaving")
        close()
        break
      end
      loop.yield() -- the handlers run before this worker looks again
    end
    if acceptor == loop.current() then acceptor = nil end
  end

  control = loop.spawn(function()
    while true do
      local msg, fds = chan:recv()
      if msg == nil then break end
      if fds then
        for i = 2, #fds do fds[i]:close() end
        local conn = fds[1]
        if conn then start(conn, conn:getpeername() or {}) end
      end
    end
    control = nil
    close()
  end)

  if timeout then
    -- handler tasks older than timeout are cancelled; the master hears
    -- from this loop at least every timeout / 3 (it kills a worker whose
    -- loop stops answering: a handler that never yields)
    local every = timeout / 3
    watchdog = loop.spawn(function()
      local nexttick = 0
      while not done do
        local now = monotime()
        local oldest = huge
        for t, rec in pairs(running) do
          if now - rec.since >= timeout then
            log(fmt("handler timed out after %gs (worker %d, peer %s): cancelled", timeout, getpid(), rec.peer))
            t:cancel()
            finished(t)
            if done then return end
          elseif rec.since < oldest then
            oldest = rec.since
          end
        end
        if passfd then flush() end
        if now >= nexttick then
          local peers = {}
          for _, rec in pairs(running) do
            if #peers >= 8 then break end
            peers[#peers + 1] = rec.peer
          end
          post({ "tick", peers })
          nexttick = now + every
        end
        local wake = nexttick
        if oldest + timeout < wake then wake = oldest + timeout end
        local d = wake - monotime()
        loop.sleep(d > 0 and d or 0)
      end
    end)
  end

  if not passfd then acceptor = loop.spawn(acceptloop) end
  loop.run()
end

-- the body of a worker process (ipc.spawn has dropped the signal bridge)
local function workermain(chan, S, id, limit)
  -- copies of the master's ends of the other workers' channels: a worker
  -- holding them would keep those workers from seeing end of stream
  for _, slot in ipairs(S.slots) do
    if slot.chan then slot.chan:close() end
  end
  for _, c in ipairs(S.pending) do c:close() end
  if S.upgrading and S.upgrading.chan then S.upgrading.chan:close() end
  if S.upfrom then S.upfrom:close() end
  if S.mode == "passfd" then
    for _, l in ipairs(S.listeners) do l:close() end
  end
  -- Ctrl-C and a hang-up reach the whole process group, as the other
  -- signals the master takes may: the master decides (it closes our channel
  -- and we finish the request in hand), so here they are held blocked by a
  -- bridge nobody reads (lua.c's SIGINT handler would otherwise raise
  -- "interrupted!" in the middle of a request, and USR2, TTIN and TTOU
  -- would end or stop the worker)
  local hold <close> = ipc.signalfd({ "INT", "HUP", "USR2", "TTIN", "TTOU" })
  W = { chan = chan, id = id, classic = S.concurrency == 1, closing = false }
  if S.init then S.init({ id = id, pid = getpid(), mode = S.mode, concurrency = S.concurrency }) end
  if not chan:send("up") then return end
  if S.concurrency > 1 then
    taskworker(S, chan, limit)
  elseif S.mode == "passfd" then
    passfdworker(S, chan)
  else
    sharedworker(S, chan, limit)
  end
end

M.main, M.peername = workermain, peername
return M
