# shared by the check/*.sh parts: a part that cannot run prints SKIP and
# exits 0, unless CHECK_STRICT=1 (CI, where .ci/deps.sh installs the tools)
have() { command -v "$1" >/dev/null 2>&1; }
skip() {
  if [ "${CHECK_STRICT:-0}" = 1 ]; then
    echo "$1: FAIL: $2 (CHECK_STRICT=1: the tool must be there)" >&2
    exit 1
  fi
  echo "$1: SKIP: $2"
  exit 0
}
fail() {
  echo "$1: FAIL: $2" >&2
  exit 1
}
