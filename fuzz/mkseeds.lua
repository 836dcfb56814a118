-- fuzz/mkseeds.lua: writes the hand-made part of the seed corpus,
-- fuzz/corpus/<target>/seed-*, as the byte choices fuzz/reader.lua reads
-- back (run from the top of the tree: lua5.4 fuzz/mkseeds.lua). The rest
-- of fuzz/corpus/ is inputs the fuzzers found, minimized (make fuzz-merge).
package.path = "lua/?.lua;fuzz/?.lua;" .. package.path
package.cpath = (os.getenv("UNIXIPC_BUILD") or "build") .. "/?.so;" .. package.cpath
local ipc = require "unixipc"

local char, pack = string.char, string.pack

local function write(target, name, data)
  os.execute("mkdir -p fuzz/corpus/" .. target)
  local f = assert(io.open(("fuzz/corpus/%s/seed-%s"):format(target, name), "wb"))
  f:write(data)
  f:close()
end

-- a short raw string as reader:str reads one (b < 100, then len < 40)
local function rawstr(s)
  assert(#s < 40)
  return "\0" .. char(#s) .. s
end

-- reader:len for n bytes
local function len(n)
  if n < 40 then return char(n) end
  return char(250) .. pack("<I4", n)
end

-- channel: bodies for core._decode (mode byte 0), and frames over a
-- socketpair (mode 1 stream, 3 seqpacket): how byte, body length, body
local values = {
  nil, true, false, 0, -1, math.maxinteger, math.mininteger, 1.5, 0 / 0, -0.0, math.huge, "",
  "hello", ("x"):rep(100), { 1, 2, 3 }, { a = 1, b = { c = { d = "deep" } } },
  { [1.5] = "float key", [true] = false, [""] = {} }, { { {}, {} }, n = 2 },
}
for i = 1, #values + 1 do
  local v = values[i]
  write("channel", "decode-" .. i, "\0" .. ipc._encode(v))
end
local nest = {}
local t = nest
for _ = 1, 199 do t[1] = {}; t = t[1] end
write("channel", "decode-deep", "\0" .. ipc._encode(nest))
for _, mode in ipairs({ 1, 3, 1 | 4, 3 | 8 }) do
  local frames = {}
  for i, v in ipairs({ "a", { 1, 2 }, true, ("y"):rep(34) }) do
    local body = ipc._encode(v)
    local how = i == 2 and 1 or 0 -- the second frame carries one descriptor
    frames[#frames + 1] = char(how) .. len(#body) .. body
  end
  local extra = ""
  if mode & 4 ~= 0 then extra = extra .. char(3) end -- maxsize pick
  if mode & 8 ~= 0 then extra = extra .. char(1) end -- maxfds pick
  write("channel", "frames-" .. mode, char(mode) .. extra .. table.concat(frames))
end
-- a frame that announces more than it sends, and one cut short
write("channel", "frames-lies", char(1) .. char(16) .. char(3) .. "\5\2\0" .. pack("<I4", 7) ..
  char(32) .. char(10) .. ipc._encode("0123456789") .. char(8))

-- address: mode 0 (string), 1 (table), 2 (getaddrinfo), 4 (bind abstract)
for i, s in ipairs({ "/tmp/x.sock", "./rel.sock", "@name", "@a\0b", "@", "127.0.0.1:80",
  "[::1]:8080", "*:0", "localhost:http", "[fe80::1%lo]:1", "host:", ":80", "1.2.3.4:65536" }) do
  write("address", "string-" .. i, "\0" .. rawstr(s))
end
write("address", "bind-abstract", "\4" .. len(5) .. "a\0b\0c")
write("address", "getaddrinfo", "\2\0" .. rawstr("127.0.0.1") .. "\0" .. rawstr("80"))

-- flags: kill(0x7fffffff, name) with names the signal parser knows,
-- "RTMIN+n" among them. Choices: socket type, count, what = 5 (kill),
-- value kind 5 (string), str() from dictionary words
local DICTPOS = {} -- word -> index in fuzz/flags.lua's DICT (read from the file)
do
  local src = assert(io.open("fuzz/flags.lua")):read("a")
  local dict = src:match("local DICT = (%b{})")
  local i = 0
  for w in dict:gmatch('"(.-)"') do i = i + 1; DICTPOS[w] = DICTPOS[w] or i end
end
local function words(...)
  local list = { ... }
  local out = { char(115 + 0), char(#list - 1) }
  for _, w in ipairs(list) do
    out[#out + 1] = char(assert(DICTPOS[w], w) - 1) .. char(100) .. char(0) -- word, as is, no separator
  end
  return table.concat(out)
end
write("flags", "kill-rtmin", "\0\0\5\5" .. words("RTMIN+1"))
write("flags", "kill-sigrtmax", "\0\0\5\5" .. words("SIGRTMIN+", "RTMAX-1"))
write("flags", "kill-rtmin-huge", "\0\0\5\5" .. words("RTMIN", "+", "9223372036854775807"))
write("flags", "recv-flags", "\0\0\0\5" .. words("peek", "dontwait"))
write("flags", "waitpid", "\0\0\4\5" .. words("nohang"))
print("seeds written to fuzz/corpus/")
