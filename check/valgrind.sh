#!/usr/bin/env bash
# make valgrind: the descriptor, message, channel, codec, lock and signal
# specs, the hostile-peer and found-bug specs, and the specs of pidfds,
# eventfds, memfds, popen, exec and unixipc.loop under Valgrind memcheck,
# children included: forked children are followed by Valgrind itself, and
# --trace-children=yes follows exec into every lua5.4 a spec starts (via
# /bin/sh or env). Programs that are not ours and only add noise (their own
# leaks) or minutes (python3) run natively: --trace-children-skip. So do the
# shells that list their own descriptors (/proc/$$/fd) for the exec and
# popen specs: a traced process holds Valgrind's descriptors too.
#
# Each process writes its own log (vg.PID). The part fails when any of them
# reports an error or definitely lost bytes, or when a spec fails; it
# prints both figures. Errors exit the process with --error-exitcode, so a
# child with an error also fails the spec that waits for it.
#
# Waits in the specs are scaled by UNIXIPC_SLOW (support.lua's S.slow).
# Left out, each for its reason (FILTER_OUT, PIDFD below):
#   - two tests that read SigCgt from /proc/self/status: Valgrind installs
#     a handler for every signal, so every signal reads as caught;
#   - where this Valgrind does not know pidfd_open, pidfd_send_signal and
#     pidfd_getfd (3.19 answers ENOSYS: probed below), the tests that need
#     them; the module's fallback without pidfds runs instead, and its own
#     tests stay in.
#
#   VG_OUTPUT=TAP make valgrind     one line per test (find a failing one)
set -u
cd "$(dirname "$0")/.."
. check/lib.sh
have valgrind || skip valgrind "valgrind is not installed (apt-get install valgrind)"

DEFAULT_SPECS="spec/descriptor_spec.lua spec/message_spec.lua spec/channel_spec.lua
  spec/codec_spec.lua spec/lock_spec.lua spec/signal_spec.lua $(ls spec/hardening_*_spec.lua 2>/dev/null | tr '\n' ' ')
  spec/pidfd_spec.lua spec/eventfd_spec.lua spec/memfd_spec.lua spec/popen_spec.lua spec/exec_spec.lua
  spec/loop_spec.lua"
SPECS=${SPECS:-$DEFAULT_SPECS}
FILTER_OUT=(
  # Valgrind's own handler for every signal shows in SigCgt
  "puts the signal mask back on close, __close and __gc"
  "is inherited by a forked child until _sigreset"
)

# the tests that need the pidfd system calls (a pidfd_open, a signal or a
# descriptor through a handle), by their full names
PIDFD=(
  "ipc.pidfd waits for a child through its handle, in the shape of os.execute"
  "ipc.pidfd h:wait(timeout) times out, then reaps once the child ends"
  "ipc.pidfd h:kill signals through the handle; ESRCH once the process is reaped"
  "ipc.pidfd h:wait of a process that is not a child says ECHILD; polling still works"
  "ipc.pidfd h:getfd(n) copies a descriptor of the process; h:getfd() is its own number"
  "ipc.pidfd h:wait inside a task hands its wait to the scheduler and runs again"
  "ipc.pidfd a handle crosses a channel and is still a handle"
  "ipc.pidfd rejects bad arguments"
  # (without pidfds p:wait naps; this test's driver does not wait the naps out)
  "p:wait inside a task hands its wait to the scheduler"
  "p:pidfd() is a handle the caller owns; refused once the child is reaped"
  "peercred().pidfd is opened when read, names the peer, and is the caller's"
  "info.pidfd comes with a message when the receiver sets passpidfd"
  "ipc.popen stdin, stdout, stderr: pipe, object, io file, path, false, \"stdout\""
  "ipc.popen wait(timeout), kill, pidfd and close"
  "ipc.popen a killed parent's pdeathsig program dies"
  "a killed parent's pdeathsig child dies; the race with fork is covered"
  "forks instead, with the same table, the same failures, a pidfd"
)

make --no-print-directory all >/dev/null || fail valgrind "build failed"
logs=$PWD/build/valgrind
rm -rf "$logs"
mkdir -p "$logs"

skipped='*/python*,*/bash,*/mktemp,*/tr,*/readlink,*/sed,*/grep,*/id,*/rm,*/flock,*/sleep,*/true,*/uptime,*/cat,*/tail,*/head,*/date,*/ps,*/kill,*/sort,*/ls,*/pwd,*/cut,*/tee,*/wc,*/stat'
VG=(valgrind --tool=memcheck --trace-children=yes "--trace-children-skip=$skipped"
  '--trace-children-skip-by-arg=*/proc/$$/fd*'
  --suppressions="$PWD/check/valgrind.supp" --log-file="$logs/vg.%p"
  --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
  --errors-for-leak-kinds=definite --num-callers=30)

# does this Valgrind know pidfd_open? (3.19 does not: ENOSYS)
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;"
nopidfd=0
if valgrind -q --log-file=/dev/null lua5.4 -e 'local ipc = require "unixipc"
  local h, _, err = ipc.pidfd(ipc.getpid()); os.exit(err == ipc.errno.ENOSYS and 3 or 0)' 2>/dev/null; then :
elif [ $? -eq 3 ]; then
  nopidfd=1
  FILTER_OUT+=("${PIDFD[@]}")
fi

filters=()
for f in "${FILTER_OUT[@]}"; do
  filters+=("--filter-out=$(printf '%s' "$f" | sed 's/[][().%+*?^$-]/%&/g')")
done

export UNIXIPC_SLOW=${UNIXIPC_SLOW:-10} UNIXIPC_VALGRIND=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
"${VG[@]}" lua5.4 "$(command -v busted || echo /usr/bin/busted)" --cpath="build/?.so;" \
  -o "${VG_OUTPUT:-utfTerminal}" "${filters[@]}" $SPECS 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[0-9]+ success' | tail -n 1)
if [ -z "$summary" ] && grep -q '^1\.\.[0-9]' "$out"; then # TAP
  summary="$(grep -c '^ok ' "$out") successes / $(grep -c '^not ok ' "$out") failures / 0 errors"
fi
specs=$(echo "$summary" | sed -n 's/^\([0-9]*\) success.*/\1/p')
failed=$(echo "$summary" | sed -n 's/^[0-9]* successes* \/ \([0-9]*\) failures* \/ \([0-9]*\) errors*.*/\1 \2/p')
procs=0; errors=0; lost=0; bad=()
for f in "$logs"/vg.*; do
  [ -f "$f" ] || continue
  procs=$((procs + 1))
  e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tr -d , | tail -n 1)
  d=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | tail -n 1)
  e=${e:-0}; d=${d:-0}
  if [ "$e" -gt 0 ] || [ "$d" -gt 0 ]; then bad+=("$f"); fi
  errors=$((errors + e)); lost=$((lost + d))
done
for f in "${bad[@]}"; do echo "---- $f"; cat "$f"; done
left="2 tests left out: SigCgt"
[ "$nopidfd" = 0 ] || left="$left; ${#PIDFD[@]} that need pidfd syscalls this Valgrind lacks"
echo "valgrind: ${specs:-0} specs in $procs processes, $errors errors, $lost bytes definitely lost ($left)"
[ -n "$summary" ] || fail valgrind "busted did not finish (exit $rc)"
set -- $failed
[ "${1:-1}" -eq 0 ] && [ "${2:-1}" -eq 0 ] && [ "$rc" -eq 0 ] || fail valgrind "specs failed under valgrind (exit $rc)"
[ "$errors" -eq 0 ] && [ "$lost" -eq 0 ] || fail valgrind "memcheck reports"
exit 0
