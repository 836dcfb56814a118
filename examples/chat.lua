-- A chat server and its clients in one process, on unixipc.loop: every
-- connection is a task written in blocking style, and a line from one
-- client reaches all the others. The clients are driven from here too,
-- so the whole conversation runs, and finishes, on its own.
local ipc = require "unixipc"
local loop = require "unixipc.loop"

local srv = assert(ipc.listen("127.0.0.1:0"))
local port = srv:getsockname().port
local NAMES = { "ada", "bob", "cyd" }
local members = {} -- conn -> name

-- read one line from a socket, keeping what follows it in buf[1]
local function readline(conn, buf)
  while true do
    local line, rest = buf[1]:match("^([^\n]*)\n(.*)$")
    if line then
      buf[1] = rest
      return line
    end
    local data = conn:recv(4096)
    if not data then return nil end
    buf[1] = buf[1] .. data
  end
end

local function broadcast(from, text)
  for conn, name in pairs(members) do
    if name ~= from then conn:sendall(text .. "\n") end
  end
end

-- the server: one task accepts, one task per member relays its lines
loop.spawn(function()
  for _ = 1, #NAMES do
    local conn = assert(srv:accept())
    loop.spawn(function()
      local buf = { "" }
      local name = readline(conn, buf)
      members[conn] = name
      broadcast(name, "* " .. name .. " joined")
      while true do
        local line = readline(conn, buf)
        if not line or line == "/quit" then break end
        broadcast(name, name .. ": " .. line)
      end
      members[conn] = nil
      broadcast(name, "* " .. name .. " left")
      conn:close()
    end)
  end
  srv:close()
end)

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- the clients: each joins, waits for everybody, says one line, reads the
-- others' lines, and leaves
local heard = {}
local joined = 0
for i, name in ipairs(NAMES) do
  loop.spawn(function()
    local c = assert(ipc.connect("127.0.0.1:" .. port))
    local buf = { "" }
    c:sendall(name .. "\n")
    joined = joined + 1
    while joined < #NAMES or count(members) < #NAMES do loop.sleep(0.01) end
    c:sendall(("hello from %s (%d)\n"):format(name, i))
    local got = {}
    while #got < #NAMES - 1 do
      local line = readline(c, buf)
      if line:match(": hello") then got[#got + 1] = line end
    end
    heard[name] = got
    c:sendall("/quit\n")
    c:close()
  end)
end

assert(loop.run(30))
for _, name in ipairs(NAMES) do
  table.sort(heard[name])
  print(name .. " heard: " .. table.concat(heard[name], " | "))
end
