-- Connect with exponential backoff (APUE's connect_retry): a fresh socket
-- for every attempt, sleeping 2^n times the base delay in between. Here the
-- server only starts listening after a while, so the first tries fail.
local ipc = require "unixipc"

local function connect_retry(addr, base, max)
  local delay = base
  while true do
    local s, msg, err = ipc.connect(addr)
    if s then return s end
    print(("connect failed (%s), retrying in %.2fs"):format(msg, delay))
    if delay > max then return nil, msg, err end
    ipc.sleep(delay)
    delay = delay * 2
  end
end

-- pick a free port, then let a late server take it
local probe = assert(ipc.listen("127.0.0.1:0"))
local port = probe:getsockname().port
probe:close()

local server = ipc.spawn(function()
  ipc.sleep(0.3) -- start late
  local srv = assert(ipc.listen("127.0.0.1:" .. port))
  local conn = assert(srv:accept())
  conn:sendall("you made it")
  conn:close()
  srv:close()
end)

local s = assert(connect_retry("127.0.0.1:" .. port, 0.05, 2))
print("server says: " .. s:recv(100))
s:close()
assert(server:wait())
