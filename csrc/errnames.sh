#!/bin/sh
# Writes csrc/errnames.inc: every errno name <errno.h> defines, each under
# its own #ifdef, the aliases (whose value is another name) last so the
# reverse map (ipc.errno[11] == "EAGAIN") keeps the primary name.
#   sh csrc/errnames.sh > csrc/errnames.inc
set -eu
defs=$(echo '#include <errno.h>' | ${CPP:-cpp} -dM | grep -E '^#define E[A-Z0-9]+ ' | sort -k2)
echo "/* written by csrc/errnames.sh from <errno.h>; each guarded, aliases last */"
emit() {
  printf '#ifdef %s\n  {"%s", NULL, %s},\n#endif\n' "$1" "$1" "$1"
}
echo "$defs" | while read -r _ name value; do
  case "$value" in E*) ;; *) emit "$name" ;; esac
done
echo "$defs" | while read -r _ name value; do
  case "$value" in E*) emit "$name" ;; esac
done
