#!/bin/sh
# Install what `make test` needs on a fresh Debian machine, or say exactly
# what to install. Optional peers (lua-socket, lua-cqueues) are installed
# with the rest when we can; specs that need them skip with a reason.
need=""
command -v lua5.4 >/dev/null 2>&1 || need="$need lua5.4"
[ -f "${LUA_INCDIR:-/usr/include/lua5.4}/lua.h" ] || need="$need liblua5.4-dev"
lua5.4 -e 'require "busted.runner"' >/dev/null 2>&1 || need="$need lua-busted"
lua5.4 -e 'require "socket"' >/dev/null 2>&1 || need="$need lua-socket"
lua5.4 -e 'require "cqueues"' >/dev/null 2>&1 || need="$need lua-cqueues"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
# `sh .ci/deps.sh check` (make check): the tools of the hardening parts,
# installed when we can; a part whose tool is missing prints SKIP
if [ "${1:-}" = check ]; then
  opt=""
  command -v clang >/dev/null 2>&1 || opt="$opt clang"
  v=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
  ls /usr/lib/llvm-${v:-14}/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
    opt="$opt libclang-rt-${v:-14}-dev"
  command -v valgrind >/dev/null 2>&1 || opt="$opt valgrind"
  command -v strace >/dev/null 2>&1 || opt="$opt strace"
  command -v unshare >/dev/null 2>&1 || opt="$opt util-linux"
  command -v ip >/dev/null 2>&1 || opt="$opt iproute2"
  if [ -n "$opt" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "deps: installing for make check:$opt"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $opt >/dev/null ||
        echo "deps: apt-get install$opt failed: those parts of make check will SKIP" >&2
    else
      echo "deps: make check wants$opt (as root: apt-get install$opt); those parts will SKIP" >&2
    fi
  fi
fi
# peers some specs drive, installed when we can (those specs skip, with the
# reason, where they are missing): luarocks (the rockspec build), curl and
# systemd-socket-activate (socket activation), util-linux's flock and setpriv
opt=""
command -v luarocks >/dev/null 2>&1 || opt="$opt luarocks"
command -v curl >/dev/null 2>&1 || opt="$opt curl"
command -v systemd-socket-activate >/dev/null 2>&1 || opt="$opt systemd"
command -v setpriv >/dev/null 2>&1 || opt="$opt util-linux"
if [ -n "$opt" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing the optional peers:$opt"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $opt >/dev/null ||
    echo "deps: apt-get install$opt failed: the specs that need them will skip" >&2
fi
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing$need"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $need >/dev/null || {
    echo "deps: apt-get install$need failed" >&2; exit 1; }
else
  echo "deps: missing$need" >&2
  echo "deps: as root, run: apt-get install$need" >&2
  exit 1
fi
