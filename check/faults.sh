#!/usr/bin/env bash
# make faults: fault injection with strace -e inject. Each row below runs
# one case of check/faults/eintr.lua or check/faults/exhaust.lua twice:
#   1. under strace without faults, to count the calls of SYSCALL the
#      process makes up to its mark() (the loader, require and setup make
#      some; they must not be hit);
#   2. with SYSCALL failing with ERRNO for the N calls that follow the mark
#      (when=K+1..K+N; injected calls do not run).
# The script checks the result (EINTR: the operation completes, right
# result; EMFILE/ENFILE/ENOMEM: nil, message, errno, nothing leaked) and
# prints what it checked; the part fails on any FAIL, a non-zero exit, a
# case that hangs (timeout), or a fault that was never injected.
set -u
cd "$(dirname "$0")/.."
. check/lib.sh
have strace || skip faults "strace is not installed (apt-get install strace)"
make --no-print-directory all >/dev/null || fail faults "build failed"
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="${UNIXIPC_BUILD:-build}/?.so;;"
out=build/faults
rm -rf "$out"
mkdir -p "$out"
# a Yama ptrace scope of 3 forbids strace altogether
if ! strace -f -qq -o /dev/null true 2>/dev/null; then
  skip faults "strace cannot trace here (ptrace not permitted)"
fi

# script case syscall errno count [known bug]
# A row marked bugN is a known bug (spec/hardening_found_spec.lua): its
# failure is reported and counted apart, and its passing says the mark can go.
ROWS="
eintr accept4 accept4 EINTR 3
eintr connect_unix connect EINTR 1
eintr connect_tcp connect EINTR 1
eintr recvfrom recvfrom EINTR 3
eintr recvmsg recvmsg EINTR 3
eintr channel recvmsg EINTR 2
eintr read read EINTR 3
eintr write write EINTR 3
eintr sendto sendto EINTR 3
eintr sendmsg sendmsg EINTR 3
eintr poll poll EINTR 3
eintr wait4 wait4 EINTR 3
eintr flock flock EINTR 3
eintr fcntl fcntl EINTR 3
eintr signal read EINTR 2
eintr signal poll EINTR 2
eintr pidfd_wait waitid EINTR 3
eintr spawn_wait waitid EINTR 3
eintr popen_wait waitid EINTR 3
eintr eventfd read EINTR 3
eintr eventfd_sem read EINTR 3
eintr loop_poll poll EINTR 3
exhaust socket socket EMFILE 1
exhaust socket socket ENFILE 1
exhaust socket socket ENOMEM 1
exhaust listen socket EMFILE 1
exhaust socketpair socketpair EMFILE 1
exhaust socketpair socketpair ENFILE 1
exhaust socketpair socketpair ENOMEM 1
exhaust spawn socketpair EMFILE 1
exhaust accept4 accept4 EMFILE 1
exhaust accept4 accept4 ENFILE 1
exhaust accept4 accept4 ENOMEM 1
exhaust pipe2 pipe2 EMFILE 1
exhaust pipe2 pipe2 ENFILE 1
exhaust pipe2 pipe2 ENOMEM 1
exhaust signalfd4 signalfd4 EMFILE 1
exhaust signalfd4 signalfd4 ENFILE 1
exhaust signalfd4 signalfd4 ENOMEM 1
exhaust openat openat EMFILE 1
exhaust openat openat ENFILE 1
exhaust openat openat ENOMEM 1
exhaust recvmsg recvmsg EMFILE 1
exhaust recvmsg recvmsg ENOMEM 1
exhaust pidfd_open pidfd_open EMFILE 1
exhaust pidfd_open pidfd_open ENFILE 1
exhaust pidfd_open pidfd_open ENOMEM 1
exhaust pidfd_fallback pidfd_open EMFILE 1
exhaust eventfd2 eventfd2 EMFILE 1
exhaust eventfd2 eventfd2 ENFILE 1
exhaust eventfd2 eventfd2 ENOMEM 1
exhaust memfd_create memfd_create EMFILE 1
exhaust memfd_create memfd_create ENFILE 1
exhaust memfd_create memfd_create ENOMEM 1
exhaust channel_memfd memfd_create EMFILE 1
exhaust channel_memfd memfd_create ENOMEM 1
exhaust popen_clone clone EAGAIN 1
exhaust popen_clone clone ENOMEM 1
exhaust spawn_fork clone EAGAIN 1
exhaust spawn_fork clone ENOMEM 1
exhaust popen_pipe pipe2 EMFILE 1
exhaust popen_pipe pipe2 ENFILE 1
exhaust popen_pipe pipe2 ENOMEM 1
exhaust popen_errpipe pipe2 EMFILE 1
exhaust popen_errpipe pipe2 ENFILE 1
exhaust popen_errpipe pipe2 ENOMEM 1
exhaust loop_poll poll ENOMEM 1
"
cases=0; injected=0; checks=0; failed=0
known_seen=0
while read -r script case sc err n known; do
  case "$script" in ""|"#"*) continue ;; esac
  cases=$((cases + 1))
  tag="$script-$case-$sc-$err"
  # 1. count the calls before the mark
  # only the process that marks is traced: its children (and the programs
  # it runs) get no faults
  FAULT_ERRNO=$err timeout 10 strace -qq -o "$out/$tag.count" -e trace="$sc,write" \
    lua5.4 "check/faults/$script.lua" "$case" >/dev/null 2>&1
  if ! grep -q '^write(2, "MARK' "$out/$tag.count"; then
    echo "FAIL $tag: the case never reached its mark"; failed=$((failed + 1)); continue
  fi
  k=$(awk -v sc="$sc" 'index($0, sc "(") == 1 { k++ } /^write\(2, "MARK/ { print k + 0; exit }' "$out/$tag.count")
  # 2. the faults
  FAULT_ERRNO=$err timeout 60 strace -qq -o "$out/$tag.trace" -e trace="$sc" \
    -e inject="$sc:error=$err:when=$((k + 1))..$((k + n))" \
    lua5.4 "check/faults/$script.lua" "$case" >"$out/$tag.out" 2>&1
  rc=$?
  hits=$(grep -c 'INJECTED' "$out/$tag.trace")
  oks=$(grep -c '^ok ' "$out/$tag.out")
  checks=$((checks + oks))
  if [ "$rc" -ne 0 ] || grep -q '^FAIL' "$out/$tag.out" || [ "$hits" -lt "$n" ]; then
    if [ -n "$known" ]; then
      known_seen=$((known_seen + 1))
      echo "faults $sc $err: KNOWN ${known^^} still there ($script $case): $(grep -m1 '^FAIL' "$out/$tag.out")"
      continue
    fi
    failed=$((failed + 1))
    echo "FAIL $tag (exit $rc, $hits of $n faults injected at calls $((k + 1))..$((k + n))):"
    grep -v '^MARK' "$out/$tag.out" | sed 's/^/    /'
    grep -B2 -A3 'INJECTED' "$out/$tag.trace" | head -n 20 | sed 's/^/    trace: /'
  else
    injected=$((injected + hits))
    echo "faults $sc $err: $hits injected, $oks checks passed ($script $case)"
    [ -z "$known" ] || echo "faults: ${known^^} no longer shows in $tag: remove its mark in check/faults.sh"
  fi
done <<<"$ROWS"
echo "faults: $injected faults injected and survived in $((cases - failed - known_seen)) of $cases cases, $checks checks passed, $failed failed, $known_seen known bugs"

[ "$failed" -eq 0 ] || exit 1
