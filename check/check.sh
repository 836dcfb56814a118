#!/usr/bin/env bash
# make check: every hardening part in turn, each with its own figure, then
# a summary. A part whose tool is missing prints SKIP with the reason (and
# fails instead under CHECK_STRICT=1, which .ci/run sets when it runs as
# root and .ci/deps.sh could install the tools). Logs: build/check/*.log.
#
#   make check                      everything (about 4 minutes on 2 cores)
#   make check CHECK_PARTS="asan faults"     some parts
#   FUZZ_SECONDS=300 LUAFUZZ_SECONDS=300 make check   longer fuzzing
set -u
cd "$(dirname "$0")/.."
PARTS=${CHECK_PARTS:-clang asan valgrind fuzz luafuzz faults}
mkdir -p build/check
declare -A took status

luafuzz_part() {
  # against the ASan build when make asan built it: a sanitizer report in
  # a batch aborts the batch (SIGABRT), which luafuzz counts as a crash
  if [ -x build/asan/bin/lua5.4 ] && [ -f build/asan/unixipc/core.so ]; then
    local logs=$PWD/build/asan/luafuzz-reports
    rm -rf "$logs"; mkdir -p "$logs"
    local out=build/check/luafuzz.out
    PATH="$PWD/build/asan/bin:$PATH" UNIXIPC_BUILD=build/asan UNIXIPC_SLOW=2 \
    ASAN_OPTIONS="log_path=$logs/asan:abort_on_error=1:detect_leaks=0:allocator_may_return_null=1" \
    UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1:abort_on_error=1:suppressions=$PWD/check/ubsan.supp" \
      lua5.4 check/luafuzz.lua | tee "$out"
    [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
    local n
    local reports
    reports=$(grep -lE 'ERROR: |runtime error|LeakSanitizer' -r "$logs" 2>/dev/null)
    n=$(echo "$reports" | grep -c .)
    for f in $reports; do echo "---- $f"; head -n 40 "$f"; done
    echo "luafuzz: $(grep -a '^luafuzz: [0-9]* calls' "$out" | sed 's/^luafuzz: //; s/, seed [0-9]*//'); ASan+UBSan build, $n sanitizer reports"
    [ "$n" -eq 0 ]
  else
    echo "luafuzz: (no ASan build: running against build/)"
    lua5.4 check/luafuzz.lua
  fi
}

for part in $PARTS; do
  echo "==== make check: $part"
  start=$(date +%s)
  case "$part" in
    luafuzz) luafuzz_part 2>&1 | tee "build/check/$part.log" ;;
    *) bash "check/$part.sh" 2>&1 | tee "build/check/$part.log" ;;
  esac
  rc=${PIPESTATUS[0]}
  took[$part]=$(($(date +%s) - start))
  if grep -q "^$part: SKIP" "build/check/$part.log"; then status[$part]=SKIP
  elif [ "$rc" -eq 0 ]; then status[$part]=ok
  else status[$part]=FAILED; fi
done

echo
echo "==== make check: summary"
failed=0
for part in $PARTS; do
  printf '%-9s %-7s %4ss  ' "$part" "${status[$part]}" "${took[$part]}"
  # the part's own figure: its last line that starts with its name
  grep -aE "^($part|fuzz [a-z]+|faults [a-z0-9]+ [A-Z]+): " "build/check/$part.log" | grep -av "^faults [a-z0-9]* [A-Z]*: [0-9]* injected" |
    grep -aE "^$part: " | tail -n 1 | sed "s/^$part: //"
  [ "${status[$part]}" = FAILED ] && failed=$((failed + 1))
done
[ "$failed" -eq 0 ] || { echo "make check: $failed part(s) failed"; exit 1; }
echo "make check: every part passed or was skipped with its reason"
