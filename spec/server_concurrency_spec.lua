-- server.run{concurrency = n}: each worker runs unixipc.loop and serves up
-- to n connections at once, one task each, with the handler of the classic
-- server unchanged (server_helper.lua). Clients here hold their
-- connections open until every one of them has been answered: a server
-- that served one connection per worker would never answer them all.
local ipc = require "unixipc"
local S = require "support"
local H = require "server_helper"

local start, stop, connect, ask, clients = H.start, H.stop, H.connect, H.ask, H.clients
local distinct, counts, allgone, gone, eventually = H.distinct, H.counts, H.allgone, H.gone, H.eventually

-- is an answer waiting on c within secs? (false proves nothing was served yet)
local function answered(c, secs)
  local ready = ipc.poll({ [c] = "r" }, secs)
  return ready[c] ~= nil
end

describe("server.run with concurrency", function()
  for _, mode in ipairs({ "shared", "passfd" }) do
    it(mode .. " mode: 4 workers x 256 answer 20, then 300 keep-alive clients held at once", function()
      local p, info = start({ listen = "127.0.0.1:0", mode = mode, concurrency = 256, handler = H.handler })
      assert.equal(4, info.workers)
      assert.equal(256, info.concurrency)
      local pids = assert(clients(info, 20))
      assert.equal(20, #pids)
      pids = assert(clients(info, 300))
      assert.equal(300, #pids)
      local _, known = distinct(info.pids)
      for _, pid in ipairs(pids) do assert.is_true(known[pid]) end
      if mode == "passfd" then
        -- the master hands out by free slots: 300 over 4 workers of 256 use more than one
        assert.is_true(distinct(pids) > 1)
      end
      local res = stop(p)
      assert.equal("TERM", res.signal)
      assert.equal(0, res.crashed)
      assert.is_true(allgone(info.pids))
    end)

    it(mode .. " mode: one worker serves many connections in blocking-style handlers", function()
      local p, info = start({ listen = "127.0.0.1:0", mode = mode, workers = 1, concurrency = 64,
        handler = H.handler })
      local pids = assert(clients(info, 50))
      assert.equal(1, distinct(pids))
      assert.equal(info.pids[1], pids[1])
      stop(p)
    end)

    it(mode .. " mode: a full worker takes no more; a freed slot does", function()
      local p, info = start({ listen = "127.0.0.1:0", mode = mode, workers = 2, concurrency = 2,
        handler = H.handler })
      local conns, pids = {}, {}
      for i = 1, 4 do
        conns[i] = connect(info)
        pids[i] = tonumber(assert(ask(conns[i], "hello")):match("%d+"))
      end
      -- two each: in shared mode a full worker let go of the accept lock
      local per = counts(pids)
      assert.equal(2, distinct(pids))
      for _, k in pairs(per) do assert.equal(2, k) end
      local fifth = connect(info)
      assert(fifth:sendall("hello"))
      assert.is_false(answered(fifth, 0.3)) -- every slot is taken
      assert.equal("ok\n", ask(conns[1], "bye"))
      conns[1]:close()
      assert.is_true(answered(fifth, 10))
      assert.equal(pids[1], tonumber(fifth:recv(100):match("%d+")))
      S.closeall({ conns[2], conns[3], conns[4], fifth })
      stop(p)
    end)

    it(mode .. " mode: a handler error ends its connection only", function()
      local dir, rm = S.tmpdir()
      local log, readlog = H.logfile(dir .. "/log")
      local p, info = start({ listen = "127.0.0.1:0", mode = mode, workers = 1, concurrency = 8,
        handler = H.handler, log = log })
      local a = connect(info)
      local pid = tonumber(assert(ask(a, "hello")):match("%d+"))
      local b = connect(info)
      assert(b:sendall("boom"))
      assert.equal("eof", select(2, b:recv(100)))
      b:close()
      assert.equal(pid .. "\n", ask(a, "hello")) -- the other connection goes on
      assert.equal("ok\n", ask(a, "bye"))
      a:close()
      local res = stop(p)
      assert.equal(0, res.crashed)
      assert.matches("handler error %(worker %d+%): .*boom requested", readlog())
      rm()
    end)

    it(mode .. " mode: maxrequests counts connections; the worker finishes those it has, a new one takes new ones",
      function()
        local p, info = start({ listen = "127.0.0.1:0", mode = mode, workers = 1, concurrency = 8,
          maxrequests = 3, handler = H.handler })
        local held, pids = {}, {}
        for i = 1, 3 do
          held[i] = connect(info)
          pids[i] = tonumber(assert(ask(held[i], "hello")):match("%d+"))
        end
        assert.equal(1, distinct(pids))
        local old = pids[1]
        local pid4 = eventually(5, function()
          local got = clients(info, 1)
          return got and got[1] ~= old and got[1]
        end)
        assert.is_number(pid4)
        -- the old worker still serves what it has, and is told so
        assert.equal("yes\n", ask(held[1], "stopping?"))
        assert.equal(old .. "\n", ask(held[2], "hello"))
        assert.is_false(gone(old))
        for _, c in ipairs(held) do
          assert.equal("ok\n", ask(c, "bye"))
          c:close()
        end
        assert.is_true(eventually(5, function() return gone(old) end))
        local res = stop(p)
        assert.equal(0, res.crashed)
        assert.is_true(res.respawned >= 1)
      end)

    it(mode .. " mode: TERM lets held connections finish, and the handlers know", function()
      local p, info = start({ listen = "127.0.0.1:0", mode = mode, workers = 2, concurrency = 16,
        handler = H.handler })
      local held = {}
      for i = 1, 6 do
        held[i] = connect(info)
        assert(ask(held[i], "hello"))
        assert.equal("no\n", ask(held[i], "stopping?"))
      end
      assert(p:kill("TERM"))
      for _, c in ipairs(held) do
        assert.equal("yes\n", eventually(5, function()
          local a = ask(c, "stopping?")
          return a == "yes\n" and a
        end))
      end
      for _, c in ipairs(held) do
        assert.equal("ok\n", ask(c, "bye"))
        c:close()
      end
      local res = stop(p, 0)
      assert.equal("TERM", res.signal)
      assert.is_true(allgone(info.pids))
    end)
  end

  it("after the grace period, workers still holding connections are terminated", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 2, concurrency = 16, grace = 0.2,
      handler = H.handler })
    local held = {}
    for i = 1, 4 do
      held[i] = connect(info)
      assert(ask(held[i], "hello"))
    end
    local res = stop(p)
    assert.equal("TERM", res.signal)
    for _, c in ipairs(held) do
      assert.is_nil((c:recv(100)))
      c:close()
    end
    assert.is_true(allgone(info.pids))
  end)

  it("HUP: new workers take new connections while the old ones finish theirs", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 2, concurrency = 16, handler = H.handler })
    local _, old = distinct(info.pids)
    local held = connect(info)
    local oldpid = tonumber(assert(ask(held, "hello")):match("%d+"))
    assert.is_true(old[oldpid])
    assert(p:kill("HUP"))
    local pids = eventually(5, function()
      local got = clients(info, 4)
      if not got then return nil end
      for _, pid in ipairs(got) do if old[pid] then return nil end end
      return got
    end)
    assert.is_table(pids)
    assert.equal("yes\n", ask(held, "stopping?"))
    assert.equal(oldpid .. "\n", ask(held, "hello"))
    assert.equal("ok\n", ask(held, "bye"))
    held:close()
    assert.is_true(eventually(5, function() return allgone(info.pids) end))
    local res = stop(p)
    assert.equal(0, res.crashed)
    assert.equal(2, res.respawned)
  end)

  it("a worker killed with SIGKILL loses its connections only; it is replaced", function()
    local p, info = start({ listen = "127.0.0.1:0", workers = 2, concurrency = 16, mode = "passfd",
      handler = H.handler })
    local conns, pids = {}, {}
    for i = 1, 4 do
      conns[i] = connect(info)
      pids[i] = tonumber(assert(ask(conns[i], "hello")):match("%d+"))
    end
    assert.equal(2, distinct(pids))
    local victim = pids[1]
    assert(ipc.kill(victim, "KILL"))
    for i, c in ipairs(conns) do
      if pids[i] == victim then
        assert.is_nil((c:recv(100)))
      else
        assert.equal(pids[i] .. "\n", ask(c, "hello"))
      end
      c:close()
    end
    local _, known = distinct(info.pids)
    assert(eventually(5, function()
      local got = clients(info, 8)
      for _, pid in ipairs(got or {}) do
        if not known[pid] then return got end -- the new worker serves too
      end
    end))
    local res = stop(p)
    assert.equal(1, res.crashed)
    assert.equal(1, res.respawned)
  end)
end)
