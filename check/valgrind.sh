#!/usr/bin/env bash
# make valgrind: the descriptor, message, channel, codec, lock and signal
# specs (and the hostile-peer specs) under Valgrind memcheck, children
# included: forked children are followed by Valgrind itself, and
# --trace-children=yes follows exec into every lua5.4 a spec starts (via
# /bin/sh or env). Programs that are not ours and only add noise (their own
# leaks) or minutes (python3) run natively: --trace-children-skip.
#
# Each process writes its own log (vg.PID). The part fails when any of them
# reports an error or definitely lost bytes, or when a spec fails; it
# prints both figures. Errors exit the process with --error-exitcode, so a
# child with an error also fails the spec that waits for it.
#
# Waits in the specs are scaled by UNIXIPC_SLOW (support.lua's S.slow);
# two tests that read SigCgt from /proc/self/status are left out: Valgrind
# installs a handler for every signal, so every signal reads as caught.
set -u
cd "$(dirname "$0")/.."
. check/lib.sh
have valgrind || skip valgrind "valgrind is not installed (apt-get install valgrind)"

DEFAULT_SPECS="spec/descriptor_spec.lua spec/message_spec.lua spec/channel_spec.lua
  spec/codec_spec.lua spec/lock_spec.lua spec/signal_spec.lua $(ls spec/hardening_*_spec.lua 2>/dev/null | tr '\n' ' ')"
SPECS=${SPECS:-$DEFAULT_SPECS}
FILTER_OUT=(
  # Valgrind's own handler for every signal shows in SigCgt
  "puts the signal mask back on close, __close and __gc"
  "is inherited by a forked child until _sigreset"
)

make --no-print-directory all >/dev/null || fail valgrind "build failed"
logs=$PWD/build/valgrind
rm -rf "$logs"
mkdir -p "$logs"

skipped='*/python*,*/bash,*/mktemp,*/tr,*/readlink,*/sed,*/grep,*/id,*/rm,*/flock,*/sleep,*/true,*/uptime,*/cat,*/tail,*/head,*/date,*/ps,*/kill'
VG=(valgrind --tool=memcheck --trace-children=yes "--trace-children-skip=$skipped"
  --suppressions="$PWD/check/valgrind.supp" --log-file="$logs/vg.%p"
  --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
  --errors-for-leak-kinds=definite --num-callers=30)

filters=()
for f in "${FILTER_OUT[@]}"; do
  filters+=("--filter-out=$(printf '%s' "$f" | sed 's/[][().%+*?^$-]/%&/g')")
done

export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;"
export UNIXIPC_SLOW=${UNIXIPC_SLOW:-10} UNIXIPC_VALGRIND=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
"${VG[@]}" lua5.4 "$(command -v busted || echo /usr/bin/busted)" --cpath="build/?.so;" \
  -o utfTerminal "${filters[@]}" $SPECS 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[0-9]+ success' | tail -n 1)
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
echo "valgrind: ${specs:-0} specs in $procs processes, $errors errors, $lost bytes definitely lost (${#FILTER_OUT[@]} tests left out: SigCgt)"
[ -n "$summary" ] || fail valgrind "busted did not finish (exit $rc)"
set -- $failed
[ "${1:-1}" -eq 0 ] && [ "${2:-1}" -eq 0 ] && [ "$rc" -eq 0 ] || fail valgrind "specs failed under valgrind (exit $rc)"
[ "$errors" -eq 0 ] && [ "$lost" -eq 0 ] || fail valgrind "memcheck reports"
exit 0
