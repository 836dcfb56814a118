-- Smoke tests of the server's bench scripts (bench/httpka.lua, the unixipc
-- server of the "http keep-alive, many connections" loop, and
-- bench/manyclients.lua): they run against the module as built. No timing
-- is judged.
local ipc = require "unixipc"
local S = require "support"

local readfile = S.readfile

describe("server bench scripts", function()
  it("bench/httpka.lua answers keep-alive requests and stops on TERM", function()
    local dir, rm = S.tmpdir()
    local portfile = dir .. "/port"
    local p = assert(ipc.spawn(function()
      ipc.exec("/bin/sh", { "-c", "exec lua5.4 bench/httpka.lua " .. portfile .. " 2 16 2>" .. dir .. "/err" })
    end))
    local port, pids
    for _ = 1, 500 do
      port, pids = (readfile(portfile) or ""):match("^(%d+)\n([%d ]+)\n")
      if port then break end
      ipc.sleep(0.01)
    end
    assert.is_truthy(port, readfile(dir .. "/err"))
    assert.equal(tostring(p.pid), pids:match("^%d+"))
    local c = assert(ipc.connect("127.0.0.1:" .. port, { timeout = 5 }))
    c:settimeout(10)
    for _ = 1, 2 do -- two requests in one write, then one more: three answers on one connection
      assert(c:sendall("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    end
    local text = ""
    repeat text = text .. assert(c:recv(4096)) until select(2, text:gsub("Hello, world\n", "")) == 4
    c:close()
    assert(p:kill("TERM"))
    assert.is_true((p:wait()))
    p.chan:close()
    rm()
  end)

  it("bench/manyclients.lua", function()
    local out, ok = S.example("../bench/manyclients.lua", "passfd 5 20")
    assert.is_true(ok, out)
    assert.matches("passfd mode, 4 workers x 256:    5 keep%-alive clients, one request each: 5 answered, 0 errors", out)
    assert.matches("passfd mode, 4 workers x 256:   20 keep%-alive clients, one request each: 20 answered, 0 errors", out)
  end)
end)
