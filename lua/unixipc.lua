-- unixipc: the Unix IPC toolbox as Lua objects.
-- The C core (unixipc.core) binds the system; the Lua layers below add
-- conveniences, codecs and policies on the same table.
local ipc = require "unixipc.core"

require "unixipc.net" (ipc)
require "unixipc.process" (ipc)
require "unixipc.channel" (ipc)
require "unixipc.systemd" (ipc)

return ipc
