-- server.run in production: socket activation (the real
-- systemd-socket-activate, answering curl), sd_notify received on our own
-- NOTIFY_SOCKET, the zero-downtime upgrade on USR2 under load, worker and
-- task timeouts, TTIN/TTOU, maxrequests jitter and the pid file.
local ipc = require "unixipc"
local S = require "support"
local H = require "server_helper"
local server = require "unixipc.server"

local start, stop, connect, ask, clients = H.start, H.stop, H.connect, H.ask, H.clients
local distinct, gone, allgone, eventually = H.distinct, H.gone, H.allgone, H.eventually

local errno = ipc.errno

local function freeport()
  local s = assert(ipc.listen("127.0.0.1:0"))
  local port = s:getsockname().port
  s:close()
  return port
end

local readfile = S.readfile

local function exists(path)
  return os.rename(path, path) ~= nil
end

local function readpid(path)
  return tonumber((readfile(path) or ""):match("^(%d+)\n$"))
end

-- a shell command run as our child (so we can signal and reap it)
local function launch(cmd)
  return assert(ipc.spawn(function() ipc.exec("/bin/sh", { "-c", "exec " .. cmd }) end))
end

-- HTTP/1.0 GET on a fresh connection: the body | nil, why, errno
local function get(addr)
  local c, msg, err = ipc.connect(addr, { timeout = 5 })
  if not c then return nil, msg, err end
  c:settimeout(10)
  local ok
  ok, msg, err = c:sendall("GET / HTTP/1.0\r\nHost: spec\r\n\r\n")
  if not ok then
    c:close()
    return nil, msg, err
  end
  local reply = {}
  repeat
    local data
    data, msg, err = c:recv(4096)
    reply[#reply + 1] = data
  until not data
  c:close()
  if msg ~= "eof" then return nil, msg, err end
  local body = table.concat(reply):match("^HTTP/1%.1 200 OK\r\n.-\r\n\r\n(.*)$")
  if not body then return nil, "bad reply: " .. table.concat(reply) end
  return body
end

-- curl's output, whether it succeeded, and what it said on stderr (a
-- retried connect leaves a line there even when the retry answers)
local function curl(args)
  local errfile = os.tmpname()
  local p = io.popen("curl -s -S -m 10 " .. args .. " 2>" .. S.quote(errfile))
  local out = p:read("a")
  local ok = p:close()
  local err = readfile(errfile) or ""
  os.remove(errfile)
  return out, ok, err
end

local function example(args)
  return ("lua5.4 examples/systemd_http.lua %s"):format(args)
end

-- a datagram receiver on an abstract NOTIFY_SOCKET
local function notifysocket()
  local name = ("@unixipc-spec-notify-%d-%d"):format(ipc.getpid(), math.random(1e9))
  local r = assert(ipc.socket("unix", "dgram"))
  assert(r:bind(name))
  r:settimeout(10)
  return r, name
end

-- the next datagram that is not WATCHDOG=1
local function nextstate(r)
  while true do
    local d, msg = r:recv(4096)
    if not d then return nil, msg end
    if d ~= "WATCHDOG=1" then return d end
  end
end

-- with NOTIFY_SOCKET (and more) set for the server's process only
local function withenv(vars, fn)
  for k, v in pairs(vars) do ipc.setenv(k, v) end
  local ok, a, b = pcall(fn)
  for k in pairs(vars) do ipc.unsetenv(k) end
  if not ok then error(a, 0) end
  return a, b
end

describe("server.run in production", function()
  describe("socket activation", function()
    it("serves under the real systemd-socket-activate over TCP and a unix path, answering curl", function()
      if not S.have("systemd-socket-activate") or not S.have("curl") then
        pending("systemd-socket-activate (Debian package systemd) or curl is not installed: skipped")
        return
      end
      local dir, rm = S.tmpdir()
      local port, path = freeport(), dir .. "/http.sock"
      local p = launch(("systemd-socket-activate -l 127.0.0.1:%d -l %s --fdname=web:local "
        .. "-E LUA_PATH -E LUA_CPATH -E ASAN_OPTIONS -E LSAN_OPTIONS -E UBSAN_OPTIONS %s 2>%s/log"):format(port, path, example("--workers 2"), dir))
      -- whatever fails below, the server ends and is reaped (TERM, then KILL)
      finally(function()
        p:close(5)
        rm()
      end)
      -- the first connection makes systemd-socket-activate execute the server
      -- (curl retries while it is not listening yet: launch does not wait)
      local out, ok, err = curl(("--retry 20 --retry-connrefused --retry-delay 1 http://127.0.0.1:%d/"):format(port))
      assert.is_true(ok, err)
      assert.matches("^hello from pid %d+ %(master " .. p.pid .. "%)\n$", out)
      out, ok, err = curl(("--unix-socket %s http://localhost/"):format(path))
      assert.is_true(ok, err)
      assert.matches("^hello from pid %d+ %(master " .. p.pid .. "%)\n$", out)
      assert(p:kill("TERM"))
      assert.is_true((p:wait()))
      local log = readfile(dir .. "/log")
      assert.matches("stopped by SIGTERM", log)
      assert.is_true(exists(path)) -- systemd's path: not the server's to remove
    end)

    it("listen = \"systemd\" without passed sockets returns nil, message, EINVAL", function()
      ipc.unsetenv("LISTEN_PID")
      ipc.unsetenv("LISTEN_FDS")
      local res, msg, err = server.run({ listen = "systemd", handler = H.handler, log = false })
      assert.is_nil(res)
      assert.matches("^listen systemd: no listening socket was passed", msg)
      assert.equal(errno.EINVAL, err)
    end)

    it("listen = \"systemd\" takes every passed socket, of any family, in a server started for it", function()
      local dir, rm = S.tmpdir()
      local path = dir .. "/s.sock"
      -- the child plays systemd: descriptors 3 and 4, then LISTEN_* for itself
      local p = assert(ipc.spawn(function(first)
        -- the channel out of the way of descriptors 3 and 4
        local chan = ipc.channel(assert(ipc.fdopen(assert(ipc.dup2(first.sock, 300)))))
        chan.sock:setcloexec(true)
        first:close()
        local tcp = assert(ipc.listen("127.0.0.1:0"))
        local unix = assert(ipc.listen(path))
        local tmp = {}
        for i, o in ipairs({ tcp, unix }) do
          tmp[i] = assert(ipc.fdopen(assert(ipc.dup2(o, 200 + i))))
          o:close()
        end
        for i, o in ipairs(tmp) do
          assert(ipc.dup2(o, 2 + i))
          o:close()
        end
        ipc.setenv("LISTEN_PID", tostring(ipc.getpid()))
        ipc.setenv("LISTEN_FDS", "2")
        ipc.setenv("LISTEN_FDNAMES", "web:local")
        local res = server.run({ listen = "systemd", workers = 2, handler = H.handler, log = false,
          ready = function(info) chan:send(info) end })
        chan:send({ result = res })
      end))
      p.chan:settimeout(10)
      local info = assert(p.chan:recv())
      assert.equal(2, #info.addresses)
      assert.matches("^127%.0%.0%.1:%d+$", info.addresses[1])
      assert.equal(path, info.addresses[2])
      assert(clients(info, 2, info.addresses[1]))
      assert(clients(info, 2, info.addresses[2]))
      assert(p:kill("TERM"))
      local report = assert(p.chan:recv())
      assert(p:wait())
      p.chan:close()
      assert.equal("TERM", report.result.signal)
      assert.is_true(exists(path)) -- inherited: not the server's to remove
      rm()
    end)

    it("serves on a list of addresses", function()
      local name = ("@unixipc-spec-list-%d"):format(ipc.getpid())
      local p, info = start({ listen = { "127.0.0.1:0", name }, workers = 2, handler = H.handler })
      assert.equal(2, #info.addresses)
      assert.equal(name, info.addresses[2])
      assert(clients(info, 2, info.addresses[1]))
      assert(clients(info, 2, name))
      stop(p)
    end)
  end)

  describe("sd_notify", function()
    it("READY=1 with a STATUS once the workers are up, RELOADING=1 on HUP, STOPPING=1 on TERM", function()
      local r, name = notifysocket()
      local p, info = withenv({ NOTIFY_SOCKET = name }, function()
        return start({ listen = "127.0.0.1:0", workers = 2, handler = H.handler })
      end)
      assert.equal("READY=1\nSTATUS=2 workers (shared mode, concurrency 1) on " .. info.address, nextstate(r))
      assert(p:kill("HUP"))
      assert.matches("^MONOTONIC_USEC=%d+\nRELOADING=1\nSTATUS=reloading workers$", nextstate(r))
      assert.equal("READY=1\nSTATUS=2 workers (shared mode, concurrency 1) on " .. info.address, nextstate(r))
      assert(p:kill("TTIN"))
      assert.equal("STATUS=3 workers (shared mode, concurrency 1) on " .. info.address, nextstate(r))
      assert(p:kill("TERM"))
      assert.equal("STATUS=stopping (SIGTERM)\nSTOPPING=1", nextstate(r))
      local res = stop(p, 0)
      assert.equal("TERM", res.signal)
      r:close()
    end)

    it("WATCHDOG=1 at half WATCHDOG_USEC while the master's loop runs; none for another WATCHDOG_PID", function()
      local r, name = notifysocket()
      local p = withenv({ NOTIFY_SOCKET = name, WATCHDOG_USEC = "100000" }, function()
        return start({ listen = "127.0.0.1:0", workers = 1, handler = H.handler })
      end)
      local times = {}
      while #times < 4 do
        local d = assert(r:recv(4096))
        if d == "WATCHDOG=1" then times[#times + 1] = ipc.monotime() end
      end
      -- never sent in a burst: at most one per half interval, a little early allowed
      for i = 2, #times do assert.is_true(times[i] - times[i - 1] > 0.04) end
      stop(p)
      r:close()
      r, name = notifysocket()
      p = withenv({ NOTIFY_SOCKET = name, WATCHDOG_USEC = "100000", WATCHDOG_PID = "1" }, function()
        return start({ listen = "127.0.0.1:0", workers = 1, handler = H.handler })
      end)
      ipc.sleep(0.3)
      stop(p)
      r:settimeout(0)
      while true do
        local d = r:recv(4096)
        if not d then break end
        assert.are_not.equal("WATCHDOG=1", d)
      end
      r:close()
    end)
  end)

  describe("upgrade on USR2", function()
    -- clients in their own processes, each on a fresh connection per request,
    -- until told to stop: counts of answers by master, failures, refusals
    local function load(addrs, n)
      local procs = {}
      for i = 1, n do
        procs[i] = assert(ipc.spawn(function(chan)
          local addr = addrs[(i - 1) % #addrs + 1]
          local res = { ok = 0, failed = 0, refused = 0, masters = {}, errors = {} }
          while not ipc.poll({ [chan] = "r" }, 0)[chan] do
            local body, msg, err = get(addr)
            if body then
              res.ok = res.ok + 1
              local m = body:match("master (%d+)")
              res.masters[m] = (res.masters[m] or 0) + 1
            else
              if err == errno.ECONNREFUSED or err == errno.ENOENT then res.refused = res.refused + 1 end
              res.failed = res.failed + 1
              if #res.errors < 5 then res.errors[#res.errors + 1] = tostring(msg) end
            end
          end
          chan:recv()
          chan:send(res)
        end))
      end
      return function()
        local total = { ok = 0, failed = 0, refused = 0, masters = {}, errors = {} }
        for _, pr in ipairs(procs) do pr.chan:send("stop") end
        for _, pr in ipairs(procs) do
          pr.chan:settimeout(30)
          local res = assert(pr.chan:recv())
          assert(pr:wait())
          pr.chan:close()
          total.ok, total.failed, total.refused = total.ok + res.ok, total.failed + res.failed, total.refused + res.refused
          for m, k in pairs(res.masters) do total.masters[m] = (total.masters[m] or 0) + k end
          for _, e in ipairs(res.errors) do total.errors[#total.errors + 1] = e end
        end
        return total
      end
    end

    it("hands TCP and unix listeners to a new master under load: nothing failed, nothing refused", function()
      local dir, rm = S.tmpdir()
      local port, path, pidfile = freeport(), dir .. "/http.sock", dir .. "/http.pid"
      local tcp = "127.0.0.1:" .. port
      local p = launch(example(("--workers 2 --concurrency 16 --pidfile %s %s %s 2>%s/log"):format(
        pidfile, tcp, path, dir)))
      local old = eventually(10, function() return readpid(pidfile) end)
      assert.equal(p.pid, old)
      local finish = load({ tcp, path, tcp }, 3)
      assert.is_true(eventually(10, function() return get(tcp) ~= nil end))
      ipc.sleep(0.2)
      assert(p:kill("USR2"))
      local new = eventually(30, function()
        local pid = readpid(pidfile)
        return pid ~= old and pid
      end)
      assert.is_number(new)
      assert.is_true((p:wait())) -- the old master left, exit 0
      p.chan:close()
      -- the new master's workers answer, the old ones are gone
      assert.is_true(eventually(10, function()
        local body = get(tcp)
        return body and body:find("master " .. new, 1, true) ~= nil
      end))
      ipc.sleep(0.2)
      local total = finish()
      local log = readfile(dir .. "/log")
      assert.equal(0, total.failed, table.concat(total.errors, "; ") .. "\n" .. log)
      assert.equal(0, total.refused)
      assert.is_true(total.ok > 0)
      assert.is_truthy(total.masters[tostring(old)], log)
      assert.is_truthy(total.masters[tostring(new)], log)
      assert.matches("upgrade: the new master %(pid " .. new .. "%) is ready; handing over", log)
      assert.matches("stopped by SIGUSR2, handed over to pid " .. new, log)
      -- the unix path outlived the old master; the new one removes it when it stops
      assert.is_truthy(get(path))
      assert(ipc.kill(new, "TERM"))
      assert.is_true(eventually(10, function() return gone(new) end))
      assert.is_nil(readfile(pidfile))
      assert.is_nil(ipc.connect(path))
      assert.is_false(exists(path))
      rm()
    end)

    it("MAINPID= follows the new master; only the main process notifies", function()
      local dir, rm = S.tmpdir()
      local r, name = notifysocket()
      assert(r:setoption("passcred", true))
      -- the next datagram that is not WATCHDOG=1, and who sent it; every
      -- datagram's sender is kept
      local senders = {}
      local function nextfrom()
        while true do
          local d, _, info = assert(r:recvmsg())
          senders[#senders + 1] = { data = d, pid = info.cred.pid }
          if d ~= "WATCHDOG=1" then return d, info.cred.pid end
        end
      end
      local tcp = "127.0.0.1:" .. freeport()
      local p = withenv({ NOTIFY_SOCKET = name, WATCHDOG_USEC = "200000" }, function()
        return launch(example(("--workers 1 %s 2>%s/log"):format(tcp, dir)))
      end)
      local d, pid = nextfrom()
      assert.matches("^READY=1\nSTATUS=1 worker ", d)
      assert.equal(p.pid, pid)
      -- a keep-alive connection keeps the old master's worker (and so the
      -- old master) busy after the hand-over, while watchdog times pass
      local held = assert(ipc.connect(tcp, { timeout = 5 }))
      held:settimeout(10)
      assert(held:sendall("GET / HTTP/1.1\r\nHost: spec\r\n\r\n"))
      assert.matches("master " .. p.pid, assert(held:recv(4096)))
      assert(p:kill("USR2"))
      d, pid = nextfrom()
      local new = tonumber(d:match("^STATUS=upgrading: new master pid (%d+) starting$"))
      assert.is_number(new)
      assert.equal(p.pid, pid)
      d, pid = nextfrom()
      assert.equal(("MAINPID=%d\nSTATUS=handing over to the new master, pid %d"):format(new, new), d)
      assert.equal(p.pid, pid)
      local handover = #senders
      d, pid = nextfrom()
      assert.matches(("^MAINPID=%d\nREADY=1\nSTATUS=1 worker "):format(new), d)
      assert.equal(new, pid)
      ipc.sleep(0.5)
      assert.is_true(p:running()) -- still finishing the held connection
      held:close()
      assert.is_true((p:wait()))
      p.chan:close()
      assert(ipc.kill(new, "TERM"))
      d, pid = nextfrom()
      assert.equal("STATUS=stopping (SIGTERM)\nSTOPPING=1", d)
      assert.equal(new, pid)
      -- after the hand-over, the old master said nothing more (no watchdog either)
      for i = handover + 1, #senders do assert.equal(new, senders[i].pid, senders[i].data) end
      assert.is_true(eventually(10, function() return gone(new) end))
      r:close()
      rm()
    end)

    it("a new master that cannot start leaves the old one serving, and says why", function()
      local dir, rm = S.tmpdir()
      local log, readlog = H.logfile(dir .. "/log")
      for _, case in ipairs({
        { { "/nonexistent/unixipc-program" },
          "upgrade failed: exec /nonexistent/unixipc%-program: No such file or directory; the old master keeps serving" },
        { { "lua5.4", "-e", "os.exit(3)" },
          "upgrade failed: the new master %(pid %d+%) exited with status 3 before it was ready; the old master keeps serving" },
      }) do
        local p, info = start({ listen = "127.0.0.1:0", workers = 2, handler = H.handler, log = log,
          upgrade = case[1] })
        assert(p:kill("USR2"))
        assert.is_truthy(eventually(10, function() return readlog():find(case[2]) end))
        local pids = assert(clients(info, 2))
        local _, known = distinct(info.pids)
        for _, pid in ipairs(pids) do assert.is_true(known[pid]) end
        -- and it can try again
        assert(p:kill("USR2"))
        assert.is_truthy(eventually(10, function()
          local _, n = readlog():gsub(case[2], "")
          return n >= 2
        end), readlog())
        local res = stop(p)
        assert.equal("TERM", res.signal)
        assert.is_nil(res.upgraded)
        os.remove(dir .. "/log")
      end
      rm()
    end)
  end)

  describe("timeout", function()
    for _, mode in ipairs({ "shared", "passfd" }) do
      it(mode .. " mode: a worker stuck in a handler longer than timeout is killed, logged with the peer, replaced",
        function()
          local dir, rm = S.tmpdir()
          local log, readlog = H.logfile(dir .. "/log")
          local p, info = start({ listen = "127.0.0.1:0", workers = 1, mode = mode, timeout = 0.3,
            handler = H.handler, log = log })
          local c = connect(info)
          local peer = tostring(c:getsockname())
          assert(c:sendall("spin"))
          assert.is_nil((c:recv(100))) -- the worker is killed: end of stream
          c:close()
          local pids = assert(eventually(5, function() return clients(info, 1) end))
          assert.are_not.equal(info.pids[1], pids[1])
          assert.matches(("worker 1 %%(pid %d%%) spent more than 0.3s on a connection from %s: killed"):format(
            info.pids[1], peer:gsub("%.", "%%.")), readlog())
          local res = stop(p)
          assert.equal(1, res.timedout)
          assert.equal(0, res.crashed)
          assert.is_true(gone(info.pids[1]))
          rm()
        end)
    end

    it("with concurrency, a handler task over the timeout is cancelled; the worker and the others go on", function()
      local dir, rm = S.tmpdir()
      local log, readlog = H.logfile(dir .. "/log")
      local p, info = start({ listen = "127.0.0.1:0", workers = 1, concurrency = 8, timeout = 0.3,
        handler = H.handler, log = log })
      local c = connect(info)
      local peer = tostring(c:getsockname())
      assert(c:sendall("block")) -- waits in recv, yielding, for ever
      assert.is_nil((c:recv(100))) -- cancelled: its connection closed
      c:close()
      local pids = assert(clients(info, 3))
      assert.equal(info.pids[1], pids[1])
      assert.matches(("handler timed out after 0.3s %%(worker %d, peer %s%%): cancelled"):format(
        info.pids[1], peer:gsub("%.", "%%.")), readlog())
      local res = stop(p)
      assert.equal(0, res.timedout)
      assert.equal(0, res.crashed)
      rm()
    end)

    it("with concurrency, a handler that never yields stops the worker's loop: the master kills it", function()
      local dir, rm = S.tmpdir()
      local log, readlog = H.logfile(dir .. "/log")
      local p, info = start({ listen = "127.0.0.1:0", workers = 1, concurrency = 8, timeout = 0.3,
        handler = H.handler, log = log })
      local c = connect(info)
      local peer = tostring(c:getsockname())
      assert(ask(c, "hello"))
      ipc.sleep(0.2) -- a report of the worker names this connection
      assert(c:sendall("spin"))
      assert.is_nil((c:recv(100)))
      c:close()
      local pids = assert(eventually(5, function() return clients(info, 1) end))
      assert.are_not.equal(info.pids[1], pids[1])
      assert.matches(("worker 1 %%(pid %d%%) has not answered for 0.3s %%(a handler that never yields%%?%%): killed; "
        .. "connections in hand at its last report: %s"):format(info.pids[1], peer:gsub("%.", "%%.")), readlog())
      local res = stop(p)
      assert.equal(1, res.timedout)
      rm()
    end)
  end)

  describe("the pool", function()
    it("TTIN adds a worker, TTOU removes one, down to one", function()
      local dir, rm = S.tmpdir()
      local log, readlog = H.logfile(dir .. "/log")
      local p, info = start({ listen = "127.0.0.1:0", workers = 2, handler = H.handler, log = log })
      assert(p:kill("TTIN"))
      local pids = eventually(5, function()
        local got = clients(info, 3)
        return got and distinct(got) == 3 and got
      end)
      assert.is_table(pids)
      -- one at a time: signals of one kind pending together arrive as one
      for _, line in ipairs({ "one worker less: 2", "one worker less: 1", "TTOU ignored: one worker is the minimum" }) do
        assert(p:kill("TTOU"))
        assert.is_truthy(eventually(5, function() return readlog():find(line, 1, true) end))
      end
      assert.matches("one more worker: 3\n.*one worker less: 2\n.*one worker less: 1\n", readlog())
      assert(clients(info, 1))
      local res = stop(p)
      assert.equal(1, res.workers)
      assert.equal(0, res.crashed)
      assert.is_true(allgone(pids))
      rm()
    end)

    it("maxrequests with jitter: each worker serves between maxrequests and maxrequests + jitter", function()
      local p, info = start({ listen = "127.0.0.1:0", workers = 1, maxrequests = 2, jitter = 3,
        handler = H.handler })
      local runs, last = {}, nil
      for _ = 1, 40 do
        local pid = assert(eventually(5, function() return clients(info, 1) end))[1]
        if pid ~= last then runs[#runs + 1] = 0 end
        runs[#runs] = runs[#runs] + 1
        last = pid
      end
      local seen = {}
      for i = 1, #runs - 1 do -- the last worker may not have reached its limit
        assert.is_true(runs[i] >= 2 and runs[i] <= 5, "served " .. runs[i])
        seen[runs[i]] = true
      end
      assert.is_true(#runs >= 8)
      local kinds = 0
      for _ in pairs(seen) do kinds = kinds + 1 end
      assert.is_true(kinds >= 2) -- not every worker leaves at the same count
      local res = stop(p)
      assert.equal(0, res.crashed)
    end)

    it("the pid file names the master while it serves, and goes when it stops", function()
      local dir, rm = S.tmpdir()
      local pidfile = dir .. "/srv.pid"
      local p = start({ listen = "127.0.0.1:0", workers = 1, handler = H.handler, pidfile = pidfile })
      assert.equal(p.pid, readpid(pidfile))
      stop(p)
      assert.is_nil(readfile(pidfile))
      rm()
    end)
  end)
end)
