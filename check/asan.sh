#!/usr/bin/env bash
# make asan: every spec against an AddressSanitizer + UndefinedBehaviorSanitizer
# build of the module. lua5.4 itself is not instrumented: it runs with the
# sanitizer runtime preloaded by the dynamic loader (ld.so --preload, so the
# programs a spec execs -- sh, python3, uptime -- do not inherit it the way
# they would inherit LD_PRELOAD). Every lua5.4 a spec starts by name finds
# the same wrapper first in PATH. Reports go to files (log_path); any file
# left after the run is a failure, printed in full.
#
# gcc's runtime is the default: clang's (ASAN_CC=clang ASAN_BUILD=build/asan-clang)
# symbolizes through an llvm-symbolizer child process, which the spec
# helper then reports as a child left unreaped.
set -u
cd "$(dirname "$0")/.."
. check/lib.sh

CC=${ASAN_CC:-gcc}
BUILD=${ASAN_BUILD:-build/asan}
have "$CC" || skip asan "$CC is not installed"
case "$CC" in
  *clang*) runtime=$($CC -print-file-name=libclang_rt.asan-x86_64.so) ;;
  *)       runtime=$($CC -print-file-name=libasan.so) ;;
esac
[ -f "$runtime" ] || skip asan "no ASan runtime for $CC (libasan / libclang-rt-dev)"
runtime=$(readlink -f "$runtime")

mkdir -p build
SAN="-fsanitize=address,undefined"
# objects built with other flags are rebuilt (make only sees timestamps)
flags="$CC -O1 -g -fno-omit-frame-pointer $SAN"
[ "$(cat "$BUILD/flags" 2>/dev/null)" = "$flags" ] || rm -rf "$BUILD/obj" "$BUILD/unixipc"
mkdir -p "$BUILD" && echo "$flags" >"$BUILD/flags"
make --no-print-directory BUILD="$BUILD" CC="$CC" \
  CFLAGS="-O1 -g -fno-omit-frame-pointer $SAN" LDFLAGS="$SAN" all >"build/asan-build.log" 2>&1 || {
  cat build/asan-build.log; fail asan "the sanitizer build failed"; }

# the wrapper (check/luawrap.c): ld.so --preload and --argv0 (glibc 2.33+)
interp=$(readelf -l "$(command -v lua5.4)" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] || interp=/lib64/ld-linux-x86-64.so.2
"$interp" --help 2>/dev/null | grep -q -- '--argv0' ||
  skip asan "$interp has no --preload/--argv0 (glibc older than 2.33)"
mkdir -p "$BUILD/bin"
cc -O2 -o "$BUILD/bin/lua5.4" check/luawrap.c -DLDSO="\"$interp\"" \
  -DRUNTIME="\"$runtime\"" -DLUA="\"$(command -v lua5.4)\"" || fail asan "cannot build check/luawrap.c"

# luarocks (build_spec) takes the Lua it builds for from the lua5.4 in PATH:
# the wrapper's directory gets the headers next to it, as a Lua tree has
LUA_INC=$(pkg-config --cflags-only-I lua5.4 2>/dev/null | sed -e 's/^ *-I//' -e 's/ .*//')
ln -sfn "$(dirname "${LUA_INC:-/usr/include/lua5.4}")" "$BUILD/include"

logs=$PWD/$BUILD/reports
rm -rf "$logs"
mkdir -p "$logs"
export PATH="$PWD/$BUILD/bin:$PATH"
# detect_leaks: lua.c closes its state at exit, so what LeakSanitizer sees
# in the main process is ours (children end in _exit and are not checked).
# allocator_may_return_null: recv(2^40) is a Lua memory error, not a report.
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:allocator_may_return_null=1:abort_on_error=0:detect_stack_use_after_return=0:handle_abort=1"
# gcc's libubsan is a runtime of its own that prints to stderr whatever
# log_path says: a report that is not suppressed (check/ubsan.supp) kills
# the process (halt_on_error), so the spec that caused it fails, and the
# "runtime error:" lines that reach the output are counted as well
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1:abort_on_error=1:suppressions=$PWD/check/ubsan.supp"
export LSAN_OPTIONS="suppressions=$PWD/check/lsan.supp:print_suppressions=0"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
UNIXIPC_BUILD="$BUILD" UNIXIPC_SANITIZER=asan bash spec/run.sh ${SPECS:-} 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
summary=$(tail -n 1 "$out")
specs=$(echo "$summary" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
# a report is an error of any sanitizer; "failed to allocate" warnings
# (allocator_may_return_null: a huge size asked for is a Lua memory error)
# are not
reports=$(grep -lE 'ERROR: |runtime error|LeakSanitizer' -r "$logs" 2>/dev/null | sort)
nrep=$(echo "$reports" | grep -c . )
nub=$(grep -ac 'runtime error: ' "$out")
nrep=$((nrep + nub))
[ "$nub" -eq 0 ] || grep -a -A8 'runtime error: ' "$out" | head -n 40
for f in $reports; do
  echo "---- $f"
  head -n 60 "$f"
done
echo "asan: ${specs:-0} specs, $nrep reports ($CC, $summary)"
[ "$rc" -eq 0 ] || fail asan "specs failed under the sanitizers"
[ "$nrep" -eq 0 ] || fail asan "$nrep sanitizer reports"
exit 0
