-- csrc/codec.c: the channel codec (core._encode, core._decode), against the
-- wire format in the README (Channels) as string.pack writes it.
local core = require "unixipc.core"
local S = require "support"

local encode, decode = core._encode, core._decode
local pack = string.pack
local MAXDEPTH = 200

-- the format written the plain way: one string.pack per value, pairs in
-- next() order (the order the C walk sees too)
local function ref(v)
  local t = type(v)
  if t == "nil" then return "\0"
  elseif t == "boolean" then return v and "\2" or "\1"
  elseif t == "number" then
    if math.type(v) == "integer" then return pack("<Bj", 3, v) end
    return pack("<Bd", 4, v)
  elseif t == "string" then return pack("<Bs4", 5, v)
  elseif t == "table" then
    local parts, n = {}, 0
    for k, x in next, v do
      n = n + 1
      parts[#parts + 1] = ref(k)
      parts[#parts + 1] = ref(x)
    end
    return pack("<BI4", 6, n) .. table.concat(parts)
  end
  error("ref: " .. t)
end

local same = S.same

local function nest(n) -- n tables, each the [1] of the one before
  local top = {}
  local t = top
  for _ = 2, n do t[1] = {}; t = t[1] end
  return top, t
end

local binary = {}
for i = 0, 255 do binary[#binary + 1] = string.char(i) end
binary = table.concat(binary)

local values = {
  nil, true, false,
  0, 1, -1, 4095, 4096, -1024, -1025, 255, 256, 65536, math.maxinteger, math.mininteger,
  0.0, -0.0, 1.0, -1.0, 0.5, 1 / 3, 1e308, 5e-324, math.huge, -math.huge, 0 / 0, -(0 / 0),
  2 ^ 53, 2 ^ 63, -2 ^ 63,
  "", "a", "hello", binary, "\0", "nul\0inside", string.rep("x", 40), string.rep("y", 41),
  string.rep("long ", 50000),
  {}, { 1, 2, 3 }, { 1.0, 2.5, -0.0 }, { a = 1, b = "two", c = true, d = false },
  { id = 1, name = "bench", ok = true, list = { 1, 2, 3 } },
  { [1.5] = "float key", [true] = 1, [false] = 0, [-7] = "neg", [math.maxinteger] = "max" },
  { [{ 1 }] = "table key", [{}] = { {} } },
  { nested = { deeper = { deepest = { "x", 0 / 0, math.huge } } } },
  { [1] = 1, [3] = 3, [1000] = 1000, x = { y = { z = binary } } },
}
local NVALUES = 54

describe("codec", function()
  it("encodes every kind exactly as string.pack writes the format", function()
    for i = 1, NVALUES do
      local v = values[i]
      assert.equal(ref(v), encode(v), "value #" .. i)
    end
    -- known bytes, independent of the reference
    assert.equal("\0", encode(nil))
    assert.equal("\1", encode(false))
    assert.equal("\2", encode(true))
    assert.equal("\3\1\0\0\0\0\0\0\0", encode(1))
    assert.equal("\3\255\255\255\255\255\255\255\255", encode(-1))
    assert.equal("\3\0\0\0\0\0\0\0\128", encode(math.mininteger))
    assert.equal("\4\0\0\0\0\0\0\240\63", encode(1.0))
    assert.equal("\4\0\0\0\0\0\0\0\128", encode(-0.0))
    assert.equal("\4\0\0\0\0\0\0\240\127", encode(math.huge))
    assert.equal("\5\0\0\0\0", encode(""))
    assert.equal("\5\2\0\0\0hi", encode("hi"))
    assert.equal("\6\0\0\0\0", encode({}))
    assert.equal("\6\1\0\0\0\3\1\0\0\0\0\0\0\0\5\1\0\0\0x", encode({ "x" }))
    assert.equal("\6\1\0\0\0\5\1\0\0\0k\6\1\0\0\0\3\1\0\0\0\0\0\0\0\2", encode({ k = { true } }))
  end)

  it("keeps nan payloads and signs bit for bit", function()
    local bits = {
      "\0\0\0\0\0\0\248\127", "\0\0\0\0\0\0\248\255", "\1\0\0\0\0\0\240\127", "\255\255\255\255\255\255\255\255",
    }
    for _, b in ipairs(bits) do
      local x = string.unpack("<d", b)
      assert.equal("\4" .. b, encode(x))
      assert.equal(b, pack("<d", decode("\4" .. b)))
    end
  end)

  it("round-trips every kind", function()
    for i = 1, NVALUES do
      local v = values[i]
      local back = decode(encode(v))
      assert.is_true(same(v, back), "value #" .. i)
    end
    local t = decode(encode({ 1.0, 2 }))
    assert.equal("float", math.type(t[1]))
    assert.equal("integer", math.type(t[2]))
    assert.equal(binary, decode(encode(binary)))
  end)

  it("decodes from a position, to the end of the string", function()
    local body = encode({ a = { 1, 2 } })
    assert.is_true(same({ a = { 1, 2 } }, decode("\165\0junk" .. body, 7)))
    assert.equal(7, decode("xx" .. encode(7), 3))
  end)

  it("ignores metatables and copies a repeated subtable", function()
    local mt = { __index = function() return "ghost" end, __pairs = function() error("no pairs") end,
      __len = function() return 99 end, __newindex = function() error("no newindex") end }
    local v = setmetatable({ real = 1 }, mt)
    assert.equal(ref({ real = 1 }), encode(v))
    local back = decode(encode(v))
    assert.is_nil(getmetatable(back))
    assert.is_nil(back.other)
    local shared = { 1, 2 }
    local t = decode(encode({ a = shared, b = shared, c = { shared } }))
    assert.is_true(same(shared, t.a) and same(shared, t.b) and same(shared, t.c[1]))
    assert.are_not.equal(t.a, t.b)
    -- shared below the depth where ancestors move into a table: not a cycle
    local top, bottom = nest(60)
    bottom[1], bottom[2] = shared, shared
    assert.is_true(same(top, decode(encode(top))))
  end)

  it("nests 200 tables both ways, and refuses a 201st", function()
    local ok200 = nest(MAXDEPTH)
    local body = encode(ok200)
    assert.equal(ref(ok200), body)
    assert.is_true(same(ok200, decode(body)))
    local bad = nest(MAXDEPTH + 1)
    assert.error_matches(function() encode(bad) end, "bad argument #1 to 'send' %(tables nested deeper than 200%)")
    -- the same as keys
    local k = {}
    local top = k
    for _ = 2, MAXDEPTH + 1 do local n = {}; k[n] = true; k = n end
    assert.error_matches(function() encode(top) end, "nested deeper than 200")
    local deep = string.rep(pack("<BI4", 6, 1) .. "\2", MAXDEPTH + 1) .. "\6\0\0\0\0"
    assert.error_matches(function() decode(deep) end, "tables nested too deeply")
    local ok = string.rep(pack("<BI4", 6, 1) .. "\2", MAXDEPTH - 1) .. "\6\0\0\0\0"
    assert.equal("table", type(decode(ok)))
  end)

  it("raises for cycles, near and deep", function()
    local self = {}
    self.me = self
    local a, b = {}, {}
    a.b, b.a = b, a
    local key = {}
    key[{ key }] = 1
    local top, bottom = nest(100)
    local mid = top
    for _ = 1, 50 do mid = mid[1] end
    bottom[1] = mid
    local top2, bottom2 = nest(100)
    bottom2[1] = top2
    for _, v in ipairs { self, a, key, top, top2, { 1, { 2, { self } } } } do
      assert.error_matches(function() encode(v) end,
        "bad argument #1 to 'send' %(cannot send a table that contains itself %(cycle%)%)")
    end
    -- nothing is left marked after an error: the same tables encode once fixed
    bottom[1], bottom2[1], self.me = nil, nil, nil
    assert.equal(ref(top), encode(top))
    assert.equal(ref(top2), encode(top2))
    assert.equal(ref(self), encode(self))
  end)

  it("raises for functions, coroutines and userdata, with send's message and position", function()
    local cases = {
      { print, "cannot send a function" },
      { function() end, "cannot send a function" },
      { coroutine.create(print), "cannot send a thread" },
      { io.stdout, "cannot send a userdata" },
      { { ok = 1, bad = { print } }, "cannot send a function" },
      { { [print] = 1 }, "cannot send a function" },
      { { [io.stdout] = 1 }, "cannot send a userdata" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(encode, c[1])
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'send' (" .. c[2] .. ")", err)
    end
    -- level 1 (default): where _encode was called; 2: that function's caller; 0: none
    local ok, err = pcall(function() encode({ { print } }) end)
    assert.is_false(ok)
    assert.matches("^[^:]*codec_spec.lua:%d+: bad argument #1 to 'send' %(cannot send a function%)$", err)
    local function send(v) return encode(v, 2) end
    local line
    ok, err = pcall(function() line = debug.getinfo(1, "l").currentline + 1
      send(print) end)
    assert.is_false(ok)
    assert.matches("^[^:]*codec_spec.lua:" .. line .. ": bad argument #1 to 'send'", err)
    ok, err = pcall(function() encode(print, 0) end)
    assert.equal("bad argument #1 to 'send' (cannot send a function)", err)
  end)

  it("raises for bad arguments", function()
    assert.error_matches(function() encode() end, "bad argument #1")
    assert.error_matches(function() encode(1, "x") end, "bad argument #2")
    assert.error_matches(function() decode() end, "bad argument #1")
    assert.error_matches(function() decode({}) end, "bad argument #1")
    assert.error_matches(function() decode("\0", 0) end, "bad argument #2")
    assert.error_matches(function() decode("\0", 3) end, "bad argument #2")
    assert.error_matches(function() decode("\0", 1.5) end, "bad argument #2")
    assert.error_matches(function() decode("\0", 2) end, "value cut short")
  end)

  it("refuses every truncation of a body", function()
    local body = encode(values[NVALUES])
    for n = 0, #body - 1 do
      local ok, err = pcall(decode, body:sub(1, n))
      assert.is_false(ok, "prefix of " .. n)
      assert.matches("cut short", err, 1, true)
    end
    for _, v in ipairs { 1, 0.5, "abc", { 1 } } do
      local b = encode(v)
      assert.error_matches(function() decode(b:sub(1, -2)) end, "value cut short")
    end
    assert.error_matches(function() decode("") end, "value cut short")
  end)

  it("refuses unknown tags, trailing bytes, bad keys and entries", function()
    for tag = 7, 255 do
      local ok, err = pcall(decode, string.char(tag))
      assert.is_false(ok)
      assert.equal("unknown value tag " .. tag, err)
    end
    assert.error_matches(function() decode(pack("<BI4", 6, 1) .. "\2\9") end, "unknown value tag 9")
    assert.error_matches(function() decode(encode("hi") .. "\0") end, "trailing bytes")
    assert.error_matches(function() decode("\0\0") end, "trailing bytes")
    assert.error_matches(function() decode(pack("<BI4", 6, 1) .. "\0\2") end, "invalid table key")
    assert.error_matches(function() decode(pack("<BI4Bd", 6, 1, 4, 0 / 0) .. "\2") end, "invalid table key")
    assert.error_matches(function() decode(pack("<BI4", 6, 1) .. "\2\0") end, "invalid table entry")
    assert.error_matches(function() decode(pack("<BI4Bj", 6, 1, 3, 1) .. "\0") end, "invalid table entry")
    assert.error_matches(function() decode(pack("<BI4", 6, 2) .. "\2\2\2\1") end, "invalid table entry")
    assert.error_matches(function() decode(pack("<BI4BjBBjB", 6, 2, 3, 1, 2, 3, 1, 1)) end, "invalid table entry")
    assert.error_matches(function() decode(pack("<BI4Bs4BBs4B", 6, 2, 5, "k", 2, 5, "k", 1)) end,
      "invalid table entry")
    -- a float key with an integer value is the integer key
    assert.error_matches(function() decode(pack("<BI4BjBBdB", 6, 2, 3, 1, 2, 4, 1.0, 1)) end,
      "invalid table entry")
    assert.equal(true, decode(pack("<BI4BdB", 6, 1, 4, 2.0, 2))[2])
  end)

  it("bounds what it allocates by the bytes left", function()
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    local cases = {
      { pack("<BI4", 6, 0xffffffff), "table count beyond the frame" },
      { pack("<BI4", 6, 1000), "table count beyond the frame" },
      { pack("<BI4", 6, 3) .. "\2\2\2\2\2", "table count beyond the frame" },
      { pack("<BI4", 5, 0xffffffff) .. "abc", "value cut short" },
      { pack("<BI4", 5, 4) .. "abc", "value cut short" },
      { string.rep(pack("<BI4", 6, 0x7fffffff), 50), "table count beyond the frame" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(decode, c[1])
      assert.is_false(ok)
      assert.equal(c[2], err)
    end
    local used = collectgarbage("count") - before
    assert.is_true(used < 64, "allocated " .. used .. " KiB")
    -- 150 nested tables, each claiming all the bytes left, over 1 MiB of
    -- pairs that turn out bad: what is made stays in proportion to the body
    local parts, size = {}, 1024 * 1024
    for i = 1, 150 do
      parts[i] = pack("<BI4", 6, (size - 6 * i) // 2) .. "\2"
    end
    local body = table.concat(parts) .. string.rep("\0", size - #table.concat(parts))
    before = collectgarbage("count")
    local ok, err = pcall(decode, body)
    used = collectgarbage("count") - before
    collectgarbage("restart")
    assert.is_false(ok)
    assert.equal("invalid table entry", err)
    assert.is_true(used < 16 * size / 1024, "allocated " .. used .. " KiB for a body of 1 MiB")
    -- a count that exactly fits is fine
    assert.is_true(same({ [true] = true }, decode(pack("<BI4", 6, 1) .. "\2\2")))
  end)
end)
