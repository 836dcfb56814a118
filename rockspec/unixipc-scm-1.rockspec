rockspec_format = "3.0"
package = "unixipc"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "The Unix IPC toolbox as Lua objects",
  detailed = [[
socketpair, Unix-domain (stream, dgram, seqpacket, abstract) and inet/inet6
sockets, sendmsg/recvmsg with descriptor passing and credentials, fork,
waitpid, exec, spawn and popen, pidfds, eventfd, sealed memfd, signals
through a pollable descriptor, TCP out-of-band data, flock, fcntl and OFD
locks, message channels.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
supported_platforms = { "linux" }
build = {
  type = "builtin",
  modules = {
    ["unixipc.core"] = {
      sources = {
        "csrc/address.c", "csrc/check.c", "csrc/codec.c", "csrc/constants.c", "csrc/core.c",
        "csrc/descriptor.c", "csrc/lock.c", "csrc/message.c", "csrc/poll.c", "csrc/process.c",
        "csrc/signal.c", "csrc/socket.c", "csrc/systemd.c", "csrc/wait.c",
        "csrc/exec.c", "csrc/pidfd.c", "csrc/eventfd.c", "csrc/memfd.c",
      },
    },
    ["unixipc"] = "lua/unixipc.lua",
    ["unixipc.check"] = "lua/unixipc/check.lua",
    ["unixipc.net"] = "lua/unixipc/net.lua",
    ["unixipc.process"] = "lua/unixipc/process.lua",
    ["unixipc.channel"] = "lua/unixipc/channel.lua",
    ["unixipc.loop"] = "lua/unixipc/loop.lua",
    ["unixipc.cqueues"] = "lua/unixipc/cqueues.lua",
    ["unixipc.server"] = "lua/unixipc/server.lua",
    ["unixipc.server.worker"] = "lua/unixipc/server/worker.lua",
    ["unixipc.systemd"] = "lua/unixipc/systemd.lua",
  },
}
