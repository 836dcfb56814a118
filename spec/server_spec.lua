-- unixipc.server: prefork servers driven for real, the classic one
-- connection per worker (concurrency 1). See server_helper.lua for how a
-- server is started and stopped; server_concurrency_spec.lua and
-- server_production_spec.lua cover the rest.
local ipc = require "unixipc"
local server = require "unixipc.server"
local S = require "support"

local H = require "server_helper"
local hello, start, stop, connect, clients = H.handler, H.start, H.stop, H.connect, H.clients
local distinct, gone, allgone, eventually = H.distinct, H.gone, H.allgone, H.eventually

local function exists(path)
  return os.rename(path, path) ~= nil
end

describe("server.run", function()
  it("shared mode: serves concurrent clients on different workers, stops on TERM", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 3, handler = hello })
    assert.equal("shared", info.mode)
    assert.is_number(info.port)
    assert.equal(3, #info.pids)
    local pids = assert(clients(info, 3))
    assert.equal(3, distinct(pids))
    local _, known = distinct(info.pids)
    for _, pid in ipairs(pids) do assert.is_true(known[pid]) end
    for _ = 1, 5 do assert(clients(info, 1)) end
    local res = stop(p)
    assert.equal("TERM", res.signal)
    assert.equal(3, res.spawned)
    assert.equal(0, res.crashed)
    assert.is_true(allgone(info.pids))
    assert.is_nil(ipc.connect(info.address, { timeout = 1 }))
  end)

  it("passfd mode: hands connections to idle workers over an abstract socket", function()
    local name = ("@unixipc-server-spec-%d"):format(ipc.getpid())
    local p, info = start({ listen = name, workers = 3, mode = "passfd", handler = hello })
    assert.equal(name, info.address)
    assert.equal("passfd", info.mode)
    local pids = assert(clients(info, 3))
    assert.equal(3, distinct(pids))
    for _ = 1, 4 do assert(clients(info, 2)) end
    local res = stop(p, "INT")
    assert.equal("INT", res.signal)
    assert.equal(3 + 4 * 2, res.connections)
    assert.is_true(allgone(info.pids))
  end)

  it("shared mode without the accept lock, on a unix path it unlinks when it stops", function()
    local dir, rm = S.tmpdir()
    local path = dir .. "/srv.sock"
    local p, info = start({ listen = path, workers = 2, acceptlock = false, handler = hello })
    assert.equal(path, info.path)
    assert.is_true(exists(path))
    local pids = assert(clients(info, 2))
    assert.equal(2, distinct(pids))
    stop(p)
    assert.is_false(exists(path))
    rm()
  end)

  for _, mode in ipairs({ "shared", "passfd" }) do
    it(mode .. " mode: a worker killed with SIGKILL is respawned and service goes on", function()
      local p, info = start({ listen = "127.0.0.1:0", workers = 2, mode = mode, handler = hello })
      local victim = info.pids[1]
      assert(ipc.kill(victim, "KILL"))
      -- two clients at once need two workers: the survivor and a new one
      local pids = eventually(3, function()
        local got = clients(info, 2)
        if got and distinct(got) == 2 then
          for _, pid in ipairs(got) do if pid == victim then return nil end end
          return got
        end
      end)
      assert.is_table(pids)
      local _, set = distinct(pids)
      assert.is_true(set[info.pids[2]])
      local res = stop(p)
      assert.equal(1, res.crashed)
      assert.equal(1, res.respawned)
      assert.is_true(allgone(info.pids))
      for _, pid in ipairs(pids) do assert.is_true(gone(pid)) end
    end)
  end

  it("a handler error closes the connection, is logged, and the worker goes on", function()
    local dir, rm = S.tmpdir()
    local logfile = dir .. "/log"
    for _, mode in ipairs({ "shared", "passfd" }) do
      local p, info = start({ listen = "127.0.0.1:0", workers = 1, mode = mode, handler = hello,
        log = function(msg)
          local f = assert(io.open(logfile, "a"))
          f:write(msg, "\n")
          f:close()
        end })
      local c = connect(info)
      assert(c:sendall("boom"))
      local data, msg = c:recv(100)
      assert.is_nil(data)
      assert.equal("eof", msg)
      c:close()
      local pids = assert(clients(info, 1))
      assert.equal(info.pids[1], pids[1])
      local res = stop(p)
      assert.equal(0, res.crashed)
      local f = assert(io.open(logfile))
      local text = f:read("a")
      f:close()
      assert.matches("handler error %(worker %d+%): .*boom requested", text)
      os.remove(logfile)
    end
    rm()
  end)

  it("maxrequests: a worker exits after n connections and is replaced at once", function()
    for _, mode in ipairs({ "shared", "passfd" }) do
      local p, info = start({ listen = "127.0.0.1:0", workers = 1, mode = mode, maxrequests = 1,
        handler = hello })
      local a = assert(clients(info, 1))[1]
      local b = assert(eventually(2, function() return clients(info, 1) end))[1]
      assert.are_not.equal(a, b)
      assert.is_true(eventually(1, function() return gone(a) end))
      local res = stop(p)
      assert.equal(0, res.crashed)
      assert.is_true(res.respawned >= 1)
    end
  end)

  it("TERM lets a request in hand finish (graceful stop)", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 2, handler = hello })
    local c = connect(info)
    assert(c:sendall("hello"))
    local pid = tonumber(assert(c:recv(100)):match("%d+"))
    assert(p:kill("TERM"))
    ipc.sleep(0.1)
    assert.is_false(gone(pid)) -- still busy with us
    assert(c:sendall("bye"))
    assert.equal("ok\n", c:recv(100))
    assert.equal(nil, (c:recv(100)))
    c:close()
    local res = stop(p, 0)
    assert.equal("TERM", res.signal)
    assert.is_true(allgone(info.pids))
  end)

  it("after the grace period a stuck worker is terminated", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 1, grace = 0.2, handler = hello })
    local c = connect(info)
    assert(c:sendall("hello"))
    assert(c:recv(100))
    local res = stop(p) -- the worker waits for "bye" that never comes
    assert.equal("TERM", res.signal)
    assert.is_nil((c:recv(100)))
    c:close()
    assert.is_true(allgone(info.pids))
  end)

  it("a worker that crashes at start is retried with a backoff, not in a busy loop", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 2, backoff = 0.2,
      init = function() ipc._exit(3) end, handler = hello })
    assert.equal(2, #info.pids)
    ipc.sleep(0.5)
    local res = stop(p)
    -- 0.1 s, then 0.2 s (the cap) between tries: a handful each, not thousands
    assert.is_true(res.crashed >= 2, "crashed " .. res.crashed)
    assert.is_true(res.crashed <= 16, "crashed " .. res.crashed)
  end)

  it("HUP replaces every worker gracefully", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 2, handler = hello })
    local _, old = distinct(info.pids)
    assert(p:kill("HUP"))
    local pids = eventually(3, function()
      local got = clients(info, 2)
      if got and not old[got[1]] and not old[got[2]] then return got end
    end)
    assert.is_table(pids)
    assert.equal(2, distinct(pids))
    local res = stop(p)
    assert.equal(0, res.crashed)
    assert.equal(2, res.respawned)
    assert.is_true(allgone(info.pids))
  end)

  it("workers exit on their own when the parent is killed", function()
    for _, mode in ipairs({ "shared", "passfd" }) do
      local p, info = start({ listen = "127.0.0.1:0", workers = 2, mode = mode, handler = hello })
      assert(p:kill("KILL"))
      p:wait()
      p.chan:close()
      -- orphans are reparented: gone, or a zombie of whoever reaps orphans here
      local function ended(pid)
        local f = io.open("/proc/" .. pid .. "/stat")
        if not f then return true end
        local state = f:read("l"):match("^%d+ %b() (%S)")
        f:close()
        return state == "Z" or state == "X"
      end
      assert.is_true(eventually(3, function() return ended(info.pids[1]) and ended(info.pids[2]) end))
    end
  end)

  it("serves on a listening socket it is given, and leaves it open", function()
    local p = assert(ipc.spawn(function(chan)
      local srv = assert(ipc.listen("127.0.0.1:0"))
      local res = server.run({ listen = srv, workers = 1, log = false, handler = hello,
        ready = function(info) chan:send(info) end })
      chan:send({ result = res, open = srv:getoption("acceptconn") })
      srv:close()
    end))
    local info = assert(p.chan:recv())
    assert(clients(info, 1))
    assert(p:kill("TERM"))
    local report = p.chan:recv()
    assert(p:wait())
    p.chan:close()
    assert.equal("TERM", report.result.signal)
    assert.is_true(report.open)
  end)

  it("returns nil, message, errno when it cannot listen, and leaves nothing behind", function()
    local busy = assert(ipc.listen("127.0.0.1:0"))
    local addr = "127.0.0.1:" .. busy:getsockname().port
    local res, msg, err = server.run({ listen = addr, workers = 1, handler = hello })
    busy:close()
    assert.is_nil(res)
    assert.matches("bind", msg)
    assert.equal(ipc.errno.EADDRINUSE, err)
    local bridge = ipc.signalfd(H.SIGNALS) -- nothing still bridged
    bridge:close()
  end)

  it("an error in the supervisor (here: ready) stops the workers, then propagates", function()
    local pids
    local ok, err = pcall(server.run, { listen = "127.0.0.1:0", workers = 2, log = false, handler = hello,
      ready = function(info)
        pids = info.pids
        error("ready failed")
      end })
    assert.is_false(ok)
    assert.matches("ready failed", err)
    assert.equal(2, #pids)
    assert.is_true(allgone(pids))
    local bridge = ipc.signalfd(H.SIGNALS)
    bridge:close()
  end)

  it("raises when the signals it needs are bridged elsewhere, and leaves nothing behind", function()
    local mine = ipc.signalfd({ "HUP" })
    local ok, err = pcall(server.run, { listen = "127.0.0.1:0", workers = 1, handler = hello })
    mine:close()
    assert.is_false(ok)
    assert.matches("cannot take over the signals it needs %(CHLD, TERM, INT, HUP, USR2, TTIN, TTOU%): "
      .. "signal HUP is already bridged", err)
  end)

  it("raises on bad arguments, naming the field", function()
    local h = function() end
    local cases = {
      { nil, "options must be a table, got nil" },
      { "127.0.0.1:0", "options must be a table, got string" },
      { { workers = 1, handler = h }, "option 'listen' is required: an address, a listening socket or \"systemd\"" },
      { { listen = 42, handler = h },
        "option 'listen' must be an address, a listening socket or \"systemd\", got 42" },
      { { listen = { "127.0.0.1:0", true }, handler = h },
        "option 'listen' [2] must be an address, a listening socket or \"systemd\", got boolean" },
      { { listen = { "systemd" }, handler = h }, "option 'listen': \"systemd\" cannot be part of a list" },
      { { listen = "127.0.0.1:0" }, "option 'handler' must be a function, got nil" },
      { { listen = "127.0.0.1:0", handler = "h" }, "option 'handler' must be a function, got string" },
      { { listen = "127.0.0.1:0", handler = h, workers = 0 },
        "option 'workers' must be an integer from 1 to 4096, got 0" },
      { { listen = "127.0.0.1:0", handler = h, workers = 1.5 },
        "option 'workers' must be an integer from 1 to 4096, got 1.5" },
      { { listen = "127.0.0.1:0", handler = h, concurrency = 0 },
        "option 'concurrency' must be an integer from 1 to 65536, got 0" },
      { { listen = "127.0.0.1:0", handler = h, mode = "thread" },
        "option 'mode' must be \"shared\" or \"passfd\", got 'thread'" },
      { { listen = "127.0.0.1:0", handler = h, acceptlock = "yes" },
        "option 'acceptlock' must be a boolean, got string" },
      { { listen = "127.0.0.1:0", handler = h, ready = true }, "option 'ready' must be a function, got boolean" },
      { { listen = "127.0.0.1:0", handler = h, init = 1 }, "option 'init' must be a function, got number" },
      { { listen = "127.0.0.1:0", handler = h, log = "stderr" },
        "option 'log' must be a function or false, got string" },
      { { listen = "127.0.0.1:0", handler = h, maxrequests = 0 },
        "option 'maxrequests' must be an integer from 1 to " },
      { { listen = "127.0.0.1:0", handler = h, jitter = 5 }, "option 'jitter' needs option 'maxrequests'" },
      { { listen = "127.0.0.1:0", handler = h, maxrequests = 9, jitter = -1 },
        "option 'jitter' must be an integer from 0 to " },
      { { listen = "127.0.0.1:0", handler = h, backlog = -1 },
        "option 'backlog' must be an integer from 1 to 2147483647, got -1" },
      { { listen = "127.0.0.1:0", handler = h, grace = -1 },
        "option 'grace' must not be negative, got -1" },
      { { listen = "127.0.0.1:0", handler = h, backoff = "x" },
        "option 'backoff' must be a number of seconds or nil, got string" },
      { { listen = "127.0.0.1:0", handler = h, timeout = 0 },
        "option 'timeout' must be a positive number of seconds, got 0" },
      { { listen = "127.0.0.1:0", handler = h, upgrade = {} },
        "option 'upgrade' must be a command {\"program\", \"arg\", ...} or false, got table" },
      { { listen = "127.0.0.1:0", handler = h, upgrade = "lua5.4 app.lua" },
        "option 'upgrade' must be a command {\"program\", \"arg\", ...} or false, got 'lua5.4 app.lua'" },
      { { listen = "127.0.0.1:0", handler = h, pidfile = 1 }, "option 'pidfile' must be a path, got 1" },
      { { listen = "systemd", handler = h, backlog = 5 },
        "option 'backlog' cannot apply to a socket that is already listening" },
      { { listen = "127.0.0.1:0", handler = h, worker = 2 }, "unknown option 'worker'" },
      { { listen = "127.0.0.1:0", handler = h, [1] = 2 }, "option names must be strings, got number" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(server.run, case[1])
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'run' (", err:sub(1, 26))
      assert.matches(case[2], err, 1, true)
    end
    -- the message points at the caller's line
    local line
    local ok, err = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      server.run({ listen = "127.0.0.1:0", handler = h, workers = 0 })
    end)
    assert.is_false(ok)
    assert.matches("^spec/server_spec.lua:" .. line .. ": bad argument #1 to 'run'", err)
    -- a socket that is not listening
    local s = assert(ipc.socket("inet", "stream"))
    ok, err = pcall(server.run, { listen = s, handler = h })
    s:close()
    assert.is_false(ok)
    assert.matches("option 'listen' is a socket that is not listening", err, 1, true)
    -- an address ipc.listen cannot parse: its own error, before any resource
    ok, err = pcall(server.run, { listen = "no-port-here", handler = h })
    assert.is_false(ok)
    assert.matches("invalid address", err, 1, true)
  end)
end)
