#!/usr/bin/env bash
# make fuzz: libFuzzer targets (clang -fsanitize=fuzzer,address,undefined),
# each run for FUZZ_SECONDS (default 25) from the seed corpus in
# fuzz/corpus/<target>/ (new inputs land in build/fuzz/corpus/<target>/, which
# is not committed). recv(n) and recvmsg{size = n} allocate n bytes up front, as
# asked: single allocations up to 1 TiB are allowed (-malloc_limit_mb), RSS
# stays limited to 2 GiB. A crash, a sanitizer report, a leaked descriptor or a
# broken contract (fuzz/target.c) fails the part; the input is saved as
# build/fuzz/crash-* and the command to replay it is printed.
#
#   make fuzz FUZZ_SECONDS=300          longer runs
#   make fuzz FUZZ_TARGETS=address      one target
#   build/fuzz/fuzz_channel build/fuzz/crash-...   replay one input
set -u
cd "$(dirname "$0")/.."
. check/lib.sh
ROOT=$PWD
CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-25}
TARGETS=${FUZZ_TARGETS:-channel address flags}
OUT=build/fuzz
have "$CC" || skip fuzz "$CC is not installed (apt-get install clang)"
LUA_INC=$(pkg-config --cflags-only-I lua5.4 2>/dev/null | sed -e 's/^ *-I//' -e 's/ .*//')
[ -n "$LUA_INC" ] || LUA_INC=/usr/include/lua5.4
LUA_LIB=$(pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe/p.c"
"$CC" -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" >/dev/null 2>&1 ||
  skip fuzz "$CC cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev)"

# UBSan recovers, so check/ubsan.supp can hold known bugs back; halt_on_error
# makes every report that is not suppressed a crash
SAN="-fsanitize=fuzzer-no-link,address,undefined -fsanitize-recover=undefined"
CFLAGS="-g -O1 -fno-omit-frame-pointer -std=gnu11 -I$LUA_INC"
mkdir -p "$OUT/obj"
objs=()
for src in csrc/*.c; do
  o="$OUT/obj/$(basename "${src%.c}").o"
  if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ csrc/private.h -nt "$o" ] || [ check/fuzz.sh -nt "$o" ]; then
    "$CC" $CFLAGS $SAN -c -o "$o" "$src" || fail fuzz "cannot compile $src"
  fi
  objs+=("$o")
done

for t in $TARGETS; do
  "$CC" $CFLAGS -fsanitize=fuzzer,address,undefined -fsanitize-recover=undefined \
    -DDRIVER="\"$t\"" -DROOT="\"$ROOT\"" -o "$OUT/fuzz_$t" fuzz/target.c "${objs[@]}" $LUA_LIB \
    -Wl,--wrap=getaddrinfo,--wrap=getnameinfo || fail fuzz "cannot link $OUT/fuzz_$t"
  mkdir -p "$OUT/corpus/$t" "fuzz/corpus/$t"
done
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/check/ubsan.supp"

if [ "${1:-}" = merge ]; then # make fuzz-merge: keep what adds coverage
  for t in $TARGETS; do
    "$OUT/fuzz_$t" -merge=1 -max_len=70000 -malloc_limit_mb=1048576 -artifact_prefix="$OUT/$t-" \
      "fuzz/corpus/$t" "$OUT/corpus/$t" 2>&1 | grep -a "MERGE-OUTER: [0-9]* new files"
  done
  exit 0
fi

total_runs=0
status=0
for t in $TARGETS; do
  bin="$OUT/fuzz_$t"
  log="$OUT/$t.log"
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1048576 -max_len=70000 \
    -print_final_stats=1 -artifact_prefix="$OUT/$t-" "$OUT/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  total_runs=$((total_runs + ${runs:-0}))
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -v '^#' "$log" | tail -n 60
    crash=$(ls -t "$OUT/$t"-* 2>/dev/null | head -n 1)
    echo "fuzz $t: FAILED after ${runs:-?} runs; replay: $bin $crash"
  else
    echo "fuzz $t: ${runs:-0} runs in ${SECONDS_EACH}s, coverage ${cov:-?}, 0 crashes"
  fi
done
echo "fuzz: $total_runs executions over $(echo $TARGETS | wc -w) targets, $([ $status = 0 ] && echo 0 || echo some) crashes"
exit $status
