-- List what getaddrinfo(3) knows for a host and service (APUE's findsvc).
--   lua5.4 examples/findsvc.lua [host [service]]
local ipc = require "unixipc"

local host, service = arg[1] or "localhost", arg[2] or "80"
for _, kind in ipairs { "stream", "dgram" } do
  local list, msg = ipc.getaddrinfo(host, service, { type = kind, canonname = true })
  if not list then
    io.stderr:write(msg, "\n")
    os.exit(1)
  end
  for _, a in ipairs(list) do
    print(("family %-5s type %-6s protocol %-3d host %-15s port %d%s"):format(
      a.family, a.type, a.protocol, a.host, a.port,
      a.canonname and ("  (canonical name " .. a.canonname .. ")") or ""))
  end
end
