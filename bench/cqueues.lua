-- cqueues versions of the bench loops. Usage: lua5.4 bench/cqueues.lua LOOP SECONDS
-- Used outside a controller: cqueues sockets then block by polling. cqueues
-- has no fork: the second process of two-process loops is another lua5.4
-- running this file as a peer, connected over a Unix-domain path.
local ok, cqueues = pcall(require, "cqueues")
if not ok then
  io.write("na lua-cqueues not installed\n")
  os.exit(0)
end
local socket = require "cqueues.socket"

local now = cqueues.monotime
local loop, secs = arg[1], tonumber(arg[2])
local peerpath

local H = dofile("bench/harness.lua")(now, secs)
local out, run = H.out, H.run
local tmppath = H.tmppath

-- start `lua5.4 bench/cqueues.lua PEER path` and accept its connection
local function peer(role)
  local path = tmppath()
  local srv = assert(socket.listen { path = path })
  local h = assert(io.popen(("lua5.4 %q %s %q"):format(arg[0], role, path), "r"))
  local c = assert(srv:accept())
  os.remove(path)
  return c, h
end

local function connect(path)
  local c = assert(socket.connect { path = path })
  assert(c:connect())
  return c
end

local msg64 = string.rep("x", 64)
local loops = {}

function loops.sendrecv()
  local a, b = socket.pair()
  run(100, function()
    a:xwrite(msg64, "n")
    b:xread(64, "b")
  end)
end

function loops.bulk()
  local c, h = peer("peer-bulk")
  H.start()
  local bytes, t0, el = 0, now()
  repeat
    for _ = 1, 16 do
      bytes = bytes + #assert(c:xread(65536, "b"))
    end
    el = now() - t0
  until el >= secs
  c:close()
  h:close()
  out(bytes, el)
end

function loops.pingpong()
  local c, h = peer("peer-echo")
  run(100, function()
    c:xwrite(msg64, "n")
    c:xread(64, "b")
  end)
  c:close()
  h:close()
end

function loops.fdpass()
  local a, b = socket.pair()
  local f = assert(io.open("/dev/null"))
  run(100, function()
    assert(a:sendfd("x", f))
    local _, fd = b:recvfd()
    fd:close()
  end)
end

function loops.signal()
  local signal = require "cqueues.signal"
  signal.block(signal.SIGUSR1)
  local l = signal.listen(signal.SIGUSR1)
  local raise, SIGUSR1 = signal.raise, signal.SIGUSR1
  run(100, function()
    raise(SIGUSR1)
    l:wait()
  end)
end

function loops.poll()
  -- cqueues.poll takes objects answering pollfd and events (a socket's own
  -- events follow its buffered state, so plain readiness needs this form)
  local list, keep, ready = {}, {}, nil
  for i = 1, 500 do
    if i == 251 then -- the ready one in the middle, as in C
      local w, r = socket.pair()
      w:xwrite("x", "n")
      keep[#keep + 1], keep[#keep + 2] = w, r
      ready = { pollfd = r:pollfd(), events = "r" }
      list[#list + 1] = ready
    end
    local a, b = socket.pair()
    keep[#keep + 1], keep[#keep + 2] = a, b
    list[#list + 1] = { pollfd = a:pollfd(), events = "r" }
    list[#list + 1] = { pollfd = b:pollfd(), events = "r" }
  end
  list[#list + 1] = 0 -- timeout 0, as in C
  local poll, unpack = cqueues.poll, table.unpack
  run(10, function()
    assert(poll(unpack(list)) == ready)
  end)
end

-- two coroutines of one controller ping-pong one byte over a socket pair
function loops.taskswitch()
  local cq = cqueues.new()
  local a, b = socket.pair()
  a:setmode("bn", "bn")
  b:setmode("bn", "bn")
  cq:wrap(function()
    while b:xread(1, "b") == "x" do b:xwrite("x", "n") end
  end)
  cq:wrap(function()
    run(100, function()
      a:xwrite("x", "n")
      a:xread(1, "b")
    end)
    a:xwrite("q", "n")
  end)
  assert(cq:loop())
end

loops["peer-bulk"] = function()
  local c = connect(peerpath)
  local chunk = string.rep("b", 65536)
  while c:xwrite(chunk, "n") do end
end

loops["peer-echo"] = function()
  local c = connect(peerpath)
  while true do
    local s = c:xread(64, "b")
    if not s or not c:xwrite(s, "n") then break end
  end
end

-- the cqueues server of "http keep-alive, many connections": one task per
-- connection under a controller in each of 2 processes sharing the listener
-- (cqueues has no fork: the second process comes from unixipc's).
-- lua5.4 bench/cqueues.lua httpka PORTFILE [PROCS]
loops.httpka = function()
  local portfile, procs = arg[2], tonumber(arg[3] or "2")
  local ipc = require "unixipc"
  local reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
    .. "Hello, world\n"
  local srv = assert(socket.listen { host = "127.0.0.1", port = 0, backlog = 1024 })
  assert(srv:listen())
  local _, _, port = srv:localname()
  local function serve()
    local cq = cqueues.new()
    cq:wrap(function()
      for con in srv:clients() do
        cq:wrap(function()
          con:setmode("tl", "bf")
          pcall(function() -- a reset connection raises from read
            while true do
              local line = con:read("*l")
              if not line then break end
              if line == "" then
                con:write(reply)
                if not con:flush() then break end
              end
            end
          end)
          con:close()
        end)
      end
    end)
    assert(cq:loop())
  end
  local pids = { ipc.getpid() }
  for _ = 2, procs do
    local pid = assert(ipc.fork())
    if pid == 0 then
      pcall(serve)
      ipc._exit(0)
    end
    pids[#pids + 1] = pid
  end
  local f = assert(io.open(portfile, "w"))
  f:write(port, "\n", table.concat(pids, " "), "\n")
  f:close()
  serve()
end

local fn = loops[loop]
if not fn then
  io.write("na not available in cqueues\n")
  os.exit(0)
end
if loop:sub(1, 5) == "peer-" then peerpath = arg[2] end
fn()
