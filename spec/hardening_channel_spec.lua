-- Hostile channel peers: a peer that lies in its frame headers, floods
-- descriptors, sends garbage or stops in the middle of a frame must not
-- make the receiver allocate without bound, keep descriptors it did not
-- ask for, or raise. The frame format (lua/unixipc/channel.lua): a 6-byte
-- header "<BBI4" (magic 0xA5, descriptor count, body length), then the
-- body; a frame's descriptors travel with its first bytes.
local ipc = require "unixipc"
local S = require "support"

local E = ipc.errno
local pack = string.pack

local function header(nfds, len, magic)
  return pack("<BBI4", magic or 0xA5, nfds, len)
end

-- Lua memory in KiB after a full collection
local function mem()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

-- n descriptors to pass (dups of one pipe end), closed by the returned fn
local function fds(n)
  local r, w = ipc.pipe()
  local list = {}
  for i = 1, n do list[i] = w end
  return list, function() r:close(); w:close() end
end

describe("a channel receiving from a hostile peer", function()
  it("refuses a huge length prefix before reading or allocating anything", function()
    for _, kind in ipairs({ "stream", "seqpacket" }) do
      local a, b = ipc.socketpair(kind)
      local ch = ipc.channel(b)
      local before = mem()
      a:send(header(0, 0xffffffff) .. "tiny")
      local v, msg, err = ch:recv()
      assert.is_nil(v)
      assert.matches("exceeds maxsize", msg)
      assert.equal(E.EMSGSIZE, err)
      assert.is_true(mem() - before < 256) -- KiB: nothing the size of the claim
      assert.error_matches(function() ch:recv() end, "closed channel") -- nothing trusted after it
      a:close()
    end
  end)

  it("honours a small maxsize the same way", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b, { maxsize = 1000 })
    a:send(header(0, 1001))
    local v, msg, err = ch:recv()
    assert.is_nil(v)
    assert.equal(E.EMSGSIZE, err)
    assert.matches("1001 bytes exceeds maxsize 1000", msg)
    a:close()
  end)

  it("grows with the bytes that come, not with the length announced", function()
    -- a peer announces 60 MiB (under the default maxsize), sends 100 KiB
    -- and stalls: the receiver holds about 100 KiB, and a timeout keeps
    -- the partial frame
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b)
    ch:settimeout(0.05)
    local before = mem()
    local pid = S.child(function()
      assert(a:sendall(header(0, 60 * 1024 * 1024) .. ("x"):rep(100 * 1024)))
      ipc.sleep(S.slow(0.3))
    end)
    local v, msg, err
    for _ = 1, 20 do
      v, msg, err = ch:recv()
      if msg == "timeout" and mem() - before > 90 then break end
    end
    assert.is_nil(v)
    assert.equal("timeout", msg)
    assert.equal(E.ETIMEDOUT, err)
    local grown = mem() - before
    assert.is_true(grown > 90 and grown < 1024, "held " .. grown .. " KiB")
    a:close()
    assert.equal(0, S.wait(pid))
    ch:settimeout(nil)
    v, msg = ch:recv() -- the peer is gone in the middle of the frame
    assert.is_nil(v)
    assert.matches("end of stream in the middle of a frame", msg)
  end)

  it("closes descriptors that came with a frame that did not announce them", function()
    for _, kind in ipairs({ "stream", "seqpacket" }) do
      local a, b = ipc.socketpair(kind)
      local ch = ipc.channel(b)
      local list, done = fds(ipc.SCM_MAX_FD)
      local base = S.nfds()
      assert(a:sendmsg { data = header(0, 1) .. "\0", fds = list })
      local v, msg, err = ch:recv()
      assert.is_nil(v)
      assert.matches("announced 0 descriptors but " .. ipc.SCM_MAX_FD .. " came", msg)
      assert.equal(E.EPROTO, err)
      assert.equal(base - 1, S.nfds()) -- every received one closed, and the channel's socket
      done()
      a:close()
    end
  end)

  it("never holds more than maxfds descriptors for a peer that floods them", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b, { maxfds = 2 })
    local base = S.nfds()
    local pid = S.child(function()
      local list = fds(200)
      for _ = 1, 50 do -- 10,000 descriptors, announced or not
        if not a:sendmsg { data = header(200, 1) .. "\0", fds = list } then break end
      end
    end)
    a:close()
    local v, msg, err = ch:recv()
    assert.is_nil(v)
    assert.equal(E.EPROTO, err)
    assert.is_truthy(msg:find("more than maxfds", 1, true) or msg:find("at most 2", 1, true), msg)
    assert.is_true(S.nfds() <= base, "descriptors left: " .. (S.nfds() - base))
    assert.equal(0, S.wait(pid))
  end)

  it("closes descriptors a stream peer attaches to a frame's later bytes", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b)
    local list, done = fds(10)
    local base = S.nfds()
    local body = ipc._encode(("b"):rep(100))
    a:send(header(0, #body) .. body:sub(1, 10))
    assert(a:sendmsg { data = body:sub(11), fds = list }) -- not where a frame's fds go
    local v, got = ch:recv()
    assert.equal(("b"):rep(100), v)
    assert.same({}, got)
    assert.equal(base, S.nfds())
    done()
    ch:close()
    a:close()
  end)

  it("answers garbage with a protocol error, never a Lua error", function()
    math.randomseed(13)
    for round = 1, 200 do
      local kind = round % 2 == 0 and "stream" or "seqpacket"
      local a, b = ipc.socketpair(kind)
      local ch = ipc.channel(b, { maxsize = 4096 })
      local junk = {}
      for i = 1, math.random(0, 300) do junk[i] = string.char(math.random(0, 255)) end
      local data = table.concat(junk)
      if round % 3 == 0 then data = header(0, #data) .. data end -- a right header, a garbage body
      if #data > 0 then a:send(data) end
      a:close()
      local ok, v, msg, err = pcall(ch.recv, ch)
      assert.is_true(ok, "recv raised: " .. tostring(v))
      if v == nil then
        assert.is_string(msg)
        if msg ~= "eof" then assert.is_number(err) end
      end
      ch:close()
    end
  end)

  it("keeps a frame whose peer stops in the middle, and finishes it when the rest comes", function()
    local a, b = ipc.socketpair()
    local ch = ipc.channel(b)
    local r, w = ipc.pipe()
    local body = ipc._encode({ "half", "and", "half" })
    assert(a:sendmsg { data = header(1, #body) .. body:sub(1, 5), fds = { w } })
    ch:settimeout(0.02)
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ch:recv() })
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { ch:recv() })
    a:send(body:sub(6))
    local v, got = ch:recv()
    assert.same({ "half", "and", "half" }, v)
    assert.equal(1, #got)
    got[1]:write("!")
    got[1]:close()
    assert.equal("!", r:read(1))
    r:close(); w:close(); ch:close(); a:close()
  end)

  it("closes the descriptors of a frame whose peer goes away in the middle", function()
    for _, kind in ipairs({ "stream", "seqpacket" }) do
      local a, b = ipc.socketpair(kind)
      local ch = ipc.channel(b)
      local list, done = fds(5)
      local base = S.nfds()
      if kind == "stream" then
        assert(a:sendmsg { data = header(5, 100) .. "abc", fds = list })
      else -- a seqpacket frame too long for one record: its first record, then nothing
        assert(a:sendmsg { data = header(5, 40000) .. ("x"):rep(32762), fds = list })
      end
      a:close()
      local v, msg = ch:recv()
      assert.is_nil(v)
      assert.matches("end of stream in the middle of a frame", msg)
      assert.equal(base - 2, S.nfds()) -- the 5, the peer's end and the channel's socket
      done()
    end
  end)

  it("refuses a seqpacket record longer than its frame, or than a record may be", function()
    local a, b = ipc.socketpair("seqpacket")
    local ch = ipc.channel(b)
    a:send(header(0, 2) .. "\2\2\2\2")
    local v, msg, err = ch:recv()
    assert.is_nil(v)
    assert.matches("record longer than its frame", msg)
    assert.equal(E.EPROTO, err)
    a:close()
    a, b = ipc.socketpair("seqpacket")
    ch = ipc.channel(b)
    local pid = S.child(function() a:send(header(0, 200000) .. ("r"):rep(100000)) end)
    v, msg, err = ch:recv()
    assert.is_nil(v)
    assert.matches("truncated", msg)
    assert.equal(0, S.wait(pid))
    a:close()
  end)
end)
