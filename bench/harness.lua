-- The timing harness the Lua bench loops share (unixipc, LuaSocket and
-- cqueues versions): each run prints "ok OPS WALL CPU", the operations done
-- and the wall-clock and process CPU seconds since the timed part began.
--   local H = dofile("bench/harness.lua")(now, secs)
-- now: a monotonic clock in seconds; secs: how long run() keeps going.
return function(now, secs)
  local clock = os.clock -- process CPU time
  local c0 = clock()
  local H = {}

  -- the timed part begins (for loops that time themselves)
  function H.start() c0 = clock() end

  function H.out(ops, el)
    io.write(("ok %d %.6f %.6f\n"):format(ops, el, clock() - c0))
  end

  -- run body() in batches until secs have passed; with BENCH_COUNT set, run
  -- exactly that many times (for valgrind --tool=callgrind: Ir per op)
  local COUNT = tonumber(os.getenv "BENCH_COUNT" or "")
  function H.run(batch, body)
    body() -- warm up once
    if COUNT then
      local t0 = now()
      c0 = clock()
      for _ = 1, COUNT do body() end
      return H.out(COUNT, now() - t0)
    end
    c0 = clock()
    local ops, t0, el = 0, now()
    repeat
      for _ = 1, batch do body() end
      ops = ops + batch
      el = now() - t0
    until el >= secs
    H.out(ops, el)
  end

  -- a fresh path for a Unix-domain socket
  function H.tmppath()
    local p = os.tmpname()
    os.remove(p)
    return p
  end

  return H
end
