-- LuaSocket versions of the bench loops. Usage: lua5.4 bench/luasocket.lua LOOP SECONDS
-- LuaSocket has no fork and no socketpair: pairs come from a Unix-domain
-- listener, and the second process of two-process loops is another
-- lua5.4 running this file as a peer.
local ok, socket = pcall(require, "socket")
if not ok then
  io.write("na lua-socket not installed\n")
  os.exit(0)
end
local unix = require "socket.unix"

local now = socket.gettime
local loop, secs = arg[1], tonumber(arg[2])
local secs_path

local H = dofile("bench/harness.lua")(now, secs)
local out, run = H.out, H.run
local tmppath = H.tmppath

local function listener(path)
  local s = assert(unix.stream())
  assert(s:bind(path))
  assert(s:listen(512))
  return s
end

local function connect(path)
  local c = assert(unix.stream())
  assert(c:connect(path))
  return c
end

-- a connected pair in this process
local function pair(srv, path)
  local c = connect(path)
  return c, assert(srv:accept())
end

-- start `lua5.4 bench/luasocket.lua PEER path` and accept its connection
local function peer(role, path, srv)
  local h = assert(io.popen(("lua5.4 %q %s %q"):format(arg[0], role, path), "r"))
  return assert(srv:accept()), h
end

local msg64 = string.rep("x", 64)
local loops = {}

function loops.sendrecv()
  local path = tmppath()
  local srv = listener(path)
  local a, b = pair(srv, path)
  os.remove(path)
  run(100, function()
    a:send(msg64)
    b:receive(64)
  end)
end

function loops.bulk()
  local path = tmppath()
  local srv = listener(path)
  local c, h = peer("peer-bulk", path, srv)
  os.remove(path)
  H.start()
  local bytes, t0, el = 0, now()
  repeat
    for _ = 1, 16 do
      bytes = bytes + #assert(c:receive(65536))
    end
    el = now() - t0
  until el >= secs
  c:close()
  h:close()
  out(bytes, el)
end

function loops.pingpong()
  local path = tmppath()
  local srv = listener(path)
  local c, h = peer("peer-echo", path, srv)
  os.remove(path)
  run(100, function()
    c:send(msg64)
    c:receive(64)
  end)
  c:close()
  h:close()
end

function loops.poll()
  local path = tmppath()
  local srv = listener(path)
  local set, w, r = {}, nil, nil
  for i = 1, 500 do
    if i == 251 then -- the ready one in the middle, as in C
      w, r = pair(srv, path)
      w:send("x")
      set[#set + 1] = r
    end
    local a, b = pair(srv, path)
    set[#set + 1] = a
    set[#set + 1] = b
  end
  os.remove(path)
  local select = socket.select
  run(10, function()
    local ready = select(set, nil, 0)
    assert(ready[1] == r)
  end)
end

-- peers (the other process of a two-process loop)
loops["peer-bulk"] = function()
  local c = connect(secs_path)
  local chunk = string.rep("b", 65536)
  while c:send(chunk) do end
end

loops["peer-echo"] = function()
  local c = connect(secs_path)
  while true do
    local s = c:receive(64)
    if not s or not c:send(s) then break end
  end
end

local fn = loops[loop]
if not fn then
  io.write("na not available in LuaSocket\n")
  os.exit(0)
end
if loop:sub(1, 5) == "peer-" then secs_path = arg[2] end
fn()
