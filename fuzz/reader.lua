-- fuzz/reader.lua: turns a fuzzer's input bytes into choices and Lua values,
-- for the drivers in fuzz/*.lua (libFuzzer, fuzz/target.c) and for
-- check/luafuzz.lua (which feeds it random bytes). Reading past the end
-- gives zeros, so every input is a complete program.
local R = {}
R.__index = R

local byte, sub, char = string.byte, string.sub, string.char
local maxi, mini = math.maxinteger, math.mininteger

function R.new(data)
  return setmetatable({ s = data, pos = 1 }, R)
end

function R:eof() return self.pos > #self.s end

function R:byte()
  local b = byte(self.s, self.pos) or 0
  self.pos = self.pos + 1
  return b
end

function R:bit() return self:byte() & 1 == 1 end

-- 0 .. n-1
function R:below(n)
  if n <= 256 then return self:byte() % n end
  return ((self:byte() << 16) | (self:byte() << 8) | self:byte()) % n
end

function R:pick(list) return list[self:below(#list) + 1] end

function R:bytes(n)
  local s = sub(self.s, self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return s
end

function R:u32()
  local s = self:bytes(4)
  s = s .. string.rep("\0", 4 - #s)
  return (string.unpack("<I4", s))
end

function R:i64()
  local s = self:bytes(8)
  s = s .. string.rep("\0", 8 - #s)
  return (string.unpack("<i8", s))
end

-- a length, mostly small
function R:len(max)
  local b = self:byte()
  local n
  if b < 200 then n = b % 40
  elseif b < 250 then n = self:byte() * 4
  else n = self:u32() % 70000 end
  if max and n > max then n = max end
  return n
end

R.INTS = { 0, 1, -1, 2, 3, 7, 8, 63, 64, 127, 128, 253, 254, 255, 256, 4096, 65535, 65536,
  65537, 0x7fffffff, 0x80000000, -0x80000000, -0x80000001, 0xffffffff, 0x100000000,
  maxi, mini, maxi - 1, mini + 1, 1 << 53, -(1 << 53) }
R.FLOATS = { 0.0, -0.0, 0.5, -0.5, 1.5, 1e-300, 1e300, math.huge, -math.huge, 0 / 0,
  2.0 ^ 63, -(2.0 ^ 63), 2.0 ^ 31, 65536.0, 1.0, 3.0 }

function R:int()
  local b = self:byte()
  if b < 128 then return R.INTS[b % #R.INTS + 1] end
  if b < 192 then return b - 160 end
  return self:i64()
end

function R:float()
  local b = self:byte()
  if b < 192 then return R.FLOATS[b % #R.FLOATS + 1] end
  local s = self:bytes(8)
  s = s .. string.rep("\0", 8 - #s)
  return (string.unpack("<d", s))
end

-- a string: raw bytes, words of a dictionary joined by separators, or huge
function R:str(dict)
  local b = self:byte()
  if b < 100 or not dict then return self:bytes(self:len()) end
  if b < 110 then return string.rep(self:bytes(1 + self:below(3)), self:pick({ 100, 4096, 70000 })) end
  if b < 115 then return string.rep("\0", self:pick({ 1, 2, 108, 109, 4096 })) end
  local parts = {}
  for i = 1, 1 + self:below(4) do
    local w = self:pick(dict)
    local c = self:byte()
    if c < 40 then w = w:upper() elseif c < 50 then w = w:lower() end
    parts[#parts + 1] = w
    if c >= 240 then parts[#parts + 1] = self:bytes(self:below(6)) end
    parts[#parts + 1] = self:pick({ "", "", "|", ",", " ", "  ", "\0", "+", ":" })
  end
  return table.concat(parts)
end

-- any Lua value; extra = {values...} to pick from as well (objects, functions)
function R:value(dict, depth, extra)
  depth = depth or 0
  local k = self:below(extra and 12 or 10)
  if k == 0 then return nil
  elseif k == 1 then return self:bit()
  elseif k == 2 or k == 3 then return self:int()
  elseif k == 4 then return self:float()
  elseif k <= 7 then return self:str(dict)
  elseif k <= 9 then
    if depth > 3 then return {} end
    return self:table(dict, depth + 1, extra)
  else
    return self:pick(extra)
  end
end

-- tables of every shape: empty, lists, maps with dictionary keys, mixed,
-- holes, nested, with a metatable, self-referencing
function R:table(dict, depth, extra)
  local t = {}
  local shape = self:below(8)
  local n = self:below(6)
  if shape == 0 then return t end
  for i = 1, n do
    if shape == 1 or shape == 5 then
      t[i] = self:value(dict, depth, extra)
    elseif shape == 2 and dict then
      t[self:pick(dict)] = self:value(dict, depth, extra)
    else
      local key = self:value(dict, depth + 1, extra)
      if key ~= nil and key == key then t[key] = self:value(dict, depth, extra) end
    end
  end
  if shape == 5 then t[n + 2] = self:value(dict, depth, extra) end -- a hole
  if shape == 6 then t.self = t end
  if shape == 7 then
    setmetatable(t, { __index = function(_, key) return self:value(dict, 9, extra) end })
  end
  return t
end

return R
