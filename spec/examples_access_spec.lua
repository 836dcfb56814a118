-- The access-control example runs end to end: a server on an abstract name
-- admits a client of its own uid and refuses one of another uid (nobody),
-- judging by peercred, since file modes do not apply to abstract names.
local S = require "support"

local function root()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end

describe("access examples", function()
  it("owner_only: admits a client of the server's own uid", function()
    local out, ok = S.example("owner_only")
    assert.is_true(ok, out)
    local uid = out:match("server %(uid (%d+)%): listening on @unixipc%-owner%-only%-%d+; admits uid %d+ only")
    assert.is_not_nil(uid, out)
    assert.matches("server: pid %d+ of uid " .. uid .. " admitted", out)
    assert.matches("client %(uid " .. uid .. "%): welcome, uid " .. uid .. "; you said hello", out)
  end)

  it("owner_only: refuses a client run as nobody on the abstract name", function()
    if not root() or not S.have("setpriv") then
      pending("needs root and setpriv(1) to run a client as nobody")
      return
    end
    local p = io.popen("id -u nobody")
    local nobody = p:read("l")
    p:close()
    local out, ok = S.example("owner_only")
    assert.is_true(ok, out)
    assert.matches("server: pid %d+ of uid " .. nobody .. " refused", out)
    assert.matches("client %(uid " .. nobody .. "%): refused: this server admits uid 0 only", out)
    assert.not_matches("uid " .. nobody .. " admitted", out)
  end)
end)
