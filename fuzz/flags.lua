-- libFuzzer driver (c): the flag, name and option parsers, through calls
-- that never wait and touch nothing outside this process:
--   send/recv/recvfrom/sendall flags on a non-blocking socketpair,
--   recvmsg/sendmsg option tables, waitpid options (pids that cannot be
--   children: ECHILD),
--   kill by signal name to a pid that cannot exist (ESRCH), setasync's
--   signal on a pipe, poll/pollset event strings, shutdown modes, socket
--   options, socket families and types, open and tofile modes on /dev/null,
--   lock/flock/testlock options on a temporary file (this process's own
--   locks never conflict, so no call waits), signalfd signal lists and
--   options, channel options, seek whences.
-- Every call runs under pcall: raising is the contract for misuse. What
-- must hold: no crash, no sanitizer report, no descriptor left open
-- (fuzz/target.c), and a failure is nil, string, integer.
local ipc = require "unixipc"
local R = require "reader"

local function finding(fmt, ...) error("FINDING: " .. fmt:format(...), 0) end

local DICT = { "oob", "peek", "dontwait", "waitall", "trunc", "ctrunc", "eor", "nosignal", "more",
  "cmsg_cloexec", "errqueue", "MSG_", "MSG_PEEK", "nohang", "untraced", "continued", "WNOHANG",
  "ex", "sh", "LOCK_EX", "read", "write", "set", "cur", "end", "r", "w", "rw", "p", "both",
  "RTMIN", "RTMAX", "RTMIN+1", "RTMAX-1", "SIG", "SIGRTMIN+", "USR1", "TERM", "URG", "IO", "CHLD",
  "KILL", "STOP", "HUP", "+", "-", "stream", "dgram", "seqpacket", "raw", "unix", "inet", "inet6",
  "local", "unspec", "reuseaddr", "reuseport", "keepalive", "nodelay", "oobinline", "rcvbuf",
  "sndbuf", "passcred", "linger", "broadcast", "ipv6only", "error", "type", "acceptconn", "r+",
  "w+", "a", "a+", "b", "x", "type", "start", "len", "whence", "wait", "ofd", "size", "maxfds",
  "flags", "data", "fds", "cred", "to", "drain", "maxsize", "nonblock", "timeout",
  "9223372036854775807", "-9223372036854775808", "4294967296", "0x10", "1e3" }

local LOCKKEYS = { "type", "start", "len", "whence", "wait", "ofd", "bogus" }

local function checkfail(name, ok, a, b, c)
  -- a call that did not raise: a value, or nil, message, errno (or "eof"/"timeout")
  if ok and a == nil and not (name == "testlock" and b == nil) then -- testlock: nil = unlocked
    if type(b) ~= "string" then finding("%s failed without a message", name) end
    if b ~= "eof" and math.type(c) ~= "integer" then finding("%s failed without errno (%s)", name, b) end
  end
end

local function call(name, f, ...)
  local ok, a, b, c = pcall(f, ...)
  checkfail(name, ok, a, b, c)
  return ok, a, b, c
end

local function closelist(list)
  if type(list) ~= "table" then return end
  for _, o in ipairs(list) do pcall(o.close, o) end
end

local tmpname

return function(data)
  local r = R.new(data)
  local objs = {}
  local function keep(o) objs[#objs + 1] = o; return o end
  local a, b = ipc.socketpair(r:pick({ "stream", "dgram", "seqpacket" }), { nonblock = true })
  keep(a); keep(b)
  local pr, pw = ipc.pipe()
  keep(pr); keep(pw)
  local extra = { a, pr, io.stderr, -1, 1, 0, 2 ^ 31 }
  local ok, err = pcall(function()
    for _ = 1, 1 + r:below(6) do
      local what = r:below(18)
      local v = r:value(DICT, 1, extra)
      if what == 0 then
        a:send(r:bytes(r:len(200)))
        call("recv", b.recv, b, r:pick({ 0, 1, 10, 65536, 70000 }), v)
      elseif what == 1 then
        call("send", a.send, a, r:bytes(r:len(100)), v)
        call("recvfrom", b.recvfrom, b, r:pick({ 1, 10, nil }), r:value(DICT, 1, extra))
      elseif what == 2 then
        a:send("x")
        local okm, d, fds = call("recvmsg", b.recvmsg, b, v)
        if okm and d then closelist(fds) end
      elseif what == 3 then
        local t = type(v) == "table" and v or { data = r:str(DICT), flags = v }
        if r:bit() then t.fds = { pr, r:pick({ 0, 1, 2, pw, io.stdin }) } end
        call("sendmsg", a.sendmsg, a, t)
        local okm, d, fds = pcall(b.recvmsg, b, { flags = "dontwait" })
        if okm and d then closelist(fds) end
      elseif what == 4 then
        -- never -1 or 0: the sanitizer runtime keeps llvm-symbolizer as a child
        call("waitpid", ipc.waitpid, r:pick({ 0x7fffffff, -0x7fffffff }), v)
      elseif what == 5 then
        call("kill", ipc.kill, 0x7fffffff, v)
      elseif what == 6 then
        call("setasync", pr.setasync, pr, false, v)
      elseif what == 7 then
        call("poll", ipc.poll, { [pr] = v, [pw] = r:str(DICT) }, 0)
        local ps = ipc.pollset()
        call("pollset.add", ps.add, ps, r:pick({ pr, pw, a, 0, io.stdout }), v)
        call("pollset.wait", ps.wait, ps, 0)
        ps:close()
      elseif what == 8 then
        call("shutdown", b.shutdown, b, v)
      elseif what == 9 then
        call("setoption", a.setoption, a, r:str(DICT), v)
        call("getoption", a.getoption, a, v)
      elseif what == 10 then
        local okc, s = call("socket", ipc.socket, r:str(DICT), v, r:value(DICT, 1))
        if okc and s then s:close() end
        local okp, x, y = call("socketpair", ipc.socketpair, v, r:value(DICT, 1))
        if okp and x then x:close(); y:close() end
      elseif what == 11 then
        local oko, f = call("open", ipc.open, "/dev/null", v, r:value(DICT, 1))
        if oko and f then
          local okt, fh = call("tofile", f.tofile, f, r:str(DICT))
          if okt and fh then fh:close() end
          f:close()
        end
      elseif what == 12 or what == 13 then
        tmpname = tmpname or os.tmpname()
        local f = keep(assert(ipc.open(tmpname, "r+")))
        local opts = v
        if r:bit() then
          opts = {}
          for _ = 1, r:below(5) do opts[r:pick(LOCKKEYS)] = r:value(DICT, 1) end
        end
        if type(opts) == "table" and (opts.wait ~= nil and opts.wait ~= false) then opts.wait = r:pick({ true, 0, 0.001 }) end
        local fn = r:pick({ "lock", "flock", "testlock" })
        local okl, l
        if fn == "flock" then okl, l = call("flock", ipc.flock, f, r:str(DICT), opts)
        else okl, l = call(fn, ipc[fn], f, opts) end
        if okl and fn ~= "testlock" and l then l:release(); tostring(l) end
      elseif what == 14 then
        local list = type(v) == "table" and v or { v, r:str(DICT) }
        local oks, sig = call("signalfd", ipc.signalfd, list, r:value(DICT, 1))
        if oks and sig then sig:read(0); sig:close() end
      elseif what == 15 then
        local x, y = ipc.socketpair(r:pick({ "stream", "seqpacket", "dgram" }))
        local okc, ch = pcall(ipc.channel, x, v)
        if okc then ch:close() else x:close() end
        y:close()
      elseif what == 16 then
        local f = keep(assert(ipc.open("/dev/null", "r")))
        call("seek", f.seek, f, v, r:value(DICT, 1))
        call("events", f.events, f, r:value(DICT, 1))
        call("settimeout", f.settimeout, f, r:value(DICT, 1))
      else
        call("sendall", a.sendall, a, r:bytes(r:len(100)), v)
        call("strerror", ipc.strerror, r:value(DICT, 1))
      end
    end
  end)
  for i = #objs, 1, -1 do pcall(objs[i].close, objs[i]) end
  if not ok then error(err, 0) end
end
