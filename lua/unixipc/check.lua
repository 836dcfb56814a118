-- Argument checks for the Lua layers, with the messages of the C core's
-- (csrc/check.c): "bad argument #N to 'fn' (...)", naming the function the
-- user called and pointing at the user's line. `level` is what the caller
-- would give error() itself: 2 blames the caller's caller.
local type, error, tostring, next, pcall, getmetatable = type, error, tostring, next, pcall, getmetatable
local format, match = string.format, string.match
local mtype = math.type

local M = {}

function M.argerror(level, n, fname, fmt, ...)
  error(format("bad argument #%d to '%s' (%s)", n, fname, format(fmt, ...)), level + 1)
end
local argerror = M.argerror

-- opts (argument n of fname), nil meaning {}: every key must be in allowed
-- (a set of names); returns the table
function M.options(opts, n, fname, allowed, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(level + 1, n, fname, "options must be a table, got %s", type(opts))
  end
  for k in next, opts do
    if type(k) ~= "string" then
      argerror(level + 1, n, fname, "option names must be strings, got %s", type(k))
    elseif not allowed[k] then
      argerror(level + 1, n, fname, "unknown option '%s'", k)
    end
  end
  return opts
end

-- the checks of one option's value (nil passes: the caller has a default)

function M.int(v, name, lo, hi, n, fname, level)
  if v ~= nil and (mtype(v) ~= "integer" or v < lo or v > hi) then
    argerror(level + 1, n, fname, "option '%s' must be an integer from %d to %d, got %s",
      name, lo, hi, mtype(v) and tostring(v) or type(v))
  end
  return v
end

function M.bool(v, name, n, fname, level)
  if v ~= nil and type(v) ~= "boolean" then
    argerror(level + 1, n, fname, "option '%s' must be a boolean, got %s", name, type(v))
  end
  return v
end

-- (the messages of the C core's uipc_secondsarg)
function M.seconds(v, name, n, fname, level)
  if v == nil then return v end
  if type(v) ~= "number" then
    argerror(level + 1, n, fname, "option '%s' must be a number of seconds or nil, got %s", name, type(v))
  elseif not (v >= 0) then
    argerror(level + 1, n, fname, "option '%s' must not be negative, got %s", name, tostring(v))
  end
  return v
end

function M.callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

-- f(...) on behalf of fname: an argument error f raises is raised again as
-- fname's (same argument number), at the user's line; results pass through.
-- relay runs in M.call's frame (a tail call), so level counts from there.
local function relay(fname, level, ok, ...)
  if ok then return ... end
  local err = ...
  local n, why = match(tostring(err), "bad argument #(%d+) to '[^']*' %((.*)%)$")
  if n then argerror(level + 1, n + 0, fname, "%s", why) end
  error(err, 0)
end

function M.call(fname, level, f, ...)
  return relay(fname, level, pcall(f, ...))
end

return M
