-- unixipc.cqueues: inside a coroutine that a cqueues controller runs, every
-- unixipc call that would wait yields through cqueues' own poll protocol
-- (cqueues.poll with a pollable), so unixipc objects live beside cqueues'
-- own sockets with no poll-before-call.
--
--   require "unixipc.cqueues"
--   cq:wrap(function() local v = ch:recv() ... end)
--
-- Only a coroutine that the controller resumes itself cooperates
-- (cqueues.running() answers it, true): a plain coroutine nested inside
-- one, or the main thread, waits in poll(2) as without this module.
local core = require "unixipc.core"
local cqueues = require "cqueues"

local cqpoll, cqrunning, cqcancel, monotime = cqueues.poll, cqueues.running, cqueues.cancel,
  core.monotime

local prev

local function waiter(fd, ev, deadline)
  local cq, direct = cqrunning()
  if cq and direct then
    local timeout = deadline and deadline - monotime()
    if timeout and timeout < 0 then timeout = 0 end
    if fd < 0 then
      cqpoll(timeout)
    else
      cqpoll({ pollfd = fd, events = ev }, timeout)
      -- cqueues keeps a descriptor registered by number; ours may be
      -- closed and the number reused by the time of the next wait, which
      -- cqueues would then never register: each wait takes its own leave
      cqcancel(fd)
    end
    return true
  end
  if prev then return prev(fd, ev, deadline) end
  return false
end

prev = core._setwaiter(waiter)

return { _VERSION = "unixipc.cqueues 1" }
