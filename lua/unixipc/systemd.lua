-- ipc.notify(state [, fds]): sd_notify(3) -- one datagram to the service
-- manager's NOTIFY_SOCKET (a path, or "@name" for an abstract socket).
-- ipc.listenfds() (socket activation) is in C: csrc/systemd.c.
--
--   ipc.notify("READY=1")
--   ipc.notify{READY = 1, STATUS = "serving on :8080"}
--   ipc.notify({FDSTORE = 1, FDNAME = "conn"}, {sock})    -- keep sock in the fd store
--
-- Returns true once sent, false when NOTIFY_SOCKET is unset (not run by a
-- service manager), nil, msg, errno when it cannot be sent.
local core = require "unixipc.core"
local check = require "unixipc.check"

local type, tostring, pairs, ipairs, pcall, error, getenv =
  type, tostring, pairs, ipairs, pcall, error, os.getenv
local sort, concat = table.sort, table.concat
local find, sub, format, match = string.find, string.sub, string.format, string.match
local mtype = math.type

local EAFNOSUPPORT, ENAMETOOLONG = core.errno.EAFNOSUPPORT, core.errno.ENAMETOOLONG

-- one field's value as text
local function value(k, v)
  local tv = type(v)
  if v == true then return "1" end
  if tv == "number" then
    return mtype(v) == "float" and v == v // 1 and v < 2^63 and v >= -2^63 and format("%d", v) or tostring(v)
  end
  if tv ~= "string" then
    check.argerror(4, 1, "notify", "field '%s' must be a string, a number or true, got %s", k,
      v == false and "false" or tv)
  end
  if find(v, "\n", 1, true) then
    check.argerror(4, 1, "notify", "field '%s' must not contain a newline", k)
  end
  return v
end

-- a table of fields -> "NAME=value\n..." in name order (a datagram's
-- fields are independent; the order only makes it reproducible)
local function fields(t)
  local names = {}
  for k in pairs(t) do
    if type(k) ~= "string" or not find(k, "^[A-Z][A-Z0-9_]*$") then
      check.argerror(3, 1, "notify", "field names must be upper-case words like 'READY', got %s",
        type(k) == "string" and "'" .. k .. "'" or type(k))
    end
    names[#names + 1] = k
  end
  sort(names)
  for i, k in ipairs(names) do names[i] = k .. "=" .. value(k, t[k]) end
  return concat(names, "\n")
end

local function notify(state, fds)
  local text
  if type(state) == "string" then
    text = state
  elseif type(state) == "table" then
    text = fields(state)
  else
    check.argerror(2, 1, "notify", "state must be a string or a table of fields, got %s", type(state))
  end
  if fds ~= nil and type(fds) ~= "table" then
    check.argerror(2, 2, "notify", "fds must be a list of descriptors, got %s", type(fds))
  end
  local addr = getenv("NOTIFY_SOCKET")
  if not addr or addr == "" then return false end
  local c = sub(addr, 1, 1)
  if c ~= "/" and c ~= "@" then
    return nil, format("notify: unsupported NOTIFY_SOCKET address '%s'", addr), EAFNOSUPPORT
  end
  if #addr > 107 then
    return nil, format("notify: NOTIFY_SOCKET is too long for a unix address: '%s'", addr), ENAMETOOLONG
  end
  local s, msg, err = core.socket("unix", "dgram")
  if not s then return nil, msg, err end
  local okcall, ok
  okcall, ok, msg, err = pcall(s.sendmsg, s, { data = text, to = addr, fds = fds })
  s:close()
  if not okcall then -- a bad descriptor in fds: argument 2 of notify
    local why = match(tostring(ok), "^bad argument #%d+ to '[^']*' %((.*)%)$")
    if why then check.argerror(2, 2, "notify", "%s", why) end
    error(ok, 0)
  end
  if not ok then return nil, format("notify %s: %s", addr, core.strerror(err)), err end
  return true
end

return function(ipc)
  ipc.notify = notify
  return ipc
end
