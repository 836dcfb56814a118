/*
 * unixipc core: the module table, errors, constants and the argument
 * helpers every domain shares. Each domain file registers itself through
 * its uipc_open_* function.
 */
#include "private.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/* ---- errors ---------------------------------------------------------- */

/* nil, "op: strerror(err)", err -- err was captured by the caller */
int uipc_fail(lua_State *L, const char *op, int err) {
  return uipc_failmsg(L, op, strerror(err), err);
}

int uipc_failmsg(lua_State *L, const char *op, const char *msg, int err) {
  lua_pushnil(L);
  if (op)
    lua_pushfstring(L, "%s: %s", op, msg);
  else
    lua_pushstring(L, msg);
  lua_pushinteger(L, err);
  return 3;
}

/* "bad argument #idx to 'fn' (msg)", numbered as Lua numbers method arguments */
int uipc_argerror(lua_State *L, int idx, const char *fmt, ...) {
  va_list ap;
  const char *msg;
  va_start(ap, fmt);
  msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return luaL_argerror(L, idx, msg);
}

/* true, or nil, "op: strerror(errno)", errno for a call that returned r
   (called straight after the system call, before any other) */
int uipc_boolresult(lua_State *L, int r, const char *op) {
  int err = errno;
  if (r < 0) return uipc_fail(L, op, err);
  lua_pushboolean(L, 1);
  return 1;
}

int uipc_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  lua_pushinteger(L, ETIMEDOUT);
  return 3;
}

double uipc_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* an integer argument in [min, max]; raises naming the argument otherwise */
lua_Integer uipc_checkint(lua_State *L, int idx, lua_Integer min, lua_Integer max,
                          const char *what) {
  lua_Integer v;
  if (!lua_isinteger(L, idx)) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      uipc_argerror(L, idx, "%s must be an integer, got a float", what);
    uipc_argerror(L, idx, "%s must be an integer, got %s", what, luaL_typename(L, idx));
  }
  v = lua_tointeger(L, idx);
  if (v < min || v > max) uipc_argerror(L, idx, "%s out of range", what);
  return v;
}

lua_Integer uipc_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min, lua_Integer max,
                        const char *what) {
  return lua_isnoneornil(L, idx) ? def : uipc_checkint(L, idx, min, max, what);
}

/* a string for a system call: an embedded NUL would cut it short, so it raises */
const char *uipc_checkpath(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (strlen(s) != n) uipc_argerror(L, idx, "path contains a NUL byte");
  return s;
}

/* nil or none -> -1 (no timeout); a number must be >= 0 */
double uipc_optseconds(lua_State *L, int idx, const char *what) {
  double t;
  if (lua_isnoneornil(L, idx)) return -1;
  if (!lua_isnumber(L, idx))
    uipc_argerror(L, idx, "%s must be a number of seconds or nil, got %s", what, luaL_typename(L, idx));
  t = lua_tonumber(L, idx);
  if (!(t >= 0)) uipc_argerror(L, idx, "%s must not be negative", what);
  return t;
}

/* ---- constants ------------------------------------------------------- */

const uipc_Const uipc_signals[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL},
  {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
  {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
  {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
#ifdef SIGSTKFLT
  {"STKFLT", SIGSTKFLT},
#endif
  {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
  {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
  {"IO", SIGIO},
#ifdef SIGPWR
  {"PWR", SIGPWR},
#endif
  {"SYS", SIGSYS},
  /* aliases: name -> number only */
#ifdef SIGPOLL
  {"POLL", SIGPOLL},
#endif
  {"IOT", SIGABRT}, {"CLD", SIGCHLD},
  {NULL, 0}
};

const uipc_Const uipc_msgflags[] = {
  {"OOB", MSG_OOB}, {"PEEK", MSG_PEEK}, {"DONTROUTE", MSG_DONTROUTE},
  {"DONTWAIT", MSG_DONTWAIT}, {"WAITALL", MSG_WAITALL}, {"TRUNC", MSG_TRUNC},
  {"CTRUNC", MSG_CTRUNC}, {"EOR", MSG_EOR}, {"NOSIGNAL", MSG_NOSIGNAL},
#ifdef MSG_MORE
  {"MORE", MSG_MORE},
#endif
#ifdef MSG_CMSG_CLOEXEC
  {"CMSG_CLOEXEC", MSG_CMSG_CLOEXEC},
#endif
#ifdef MSG_ERRQUEUE
  {"ERRQUEUE", MSG_ERRQUEUE},
#endif
  {NULL, 0}
};

static const uipc_Const errnames[] = {
#include "errnames.inc"
  {NULL, 0}
};

#define C(p, n) {#p #n, p##n}
static const uipc_Const modconsts[] = {
  C(AF_, UNIX), C(AF_, INET), C(AF_, INET6), C(AF_, UNSPEC), C(AF_, LOCAL),
  C(SOCK_, STREAM), C(SOCK_, DGRAM), C(SOCK_, SEQPACKET), C(SOCK_, RAW),
  C(SOCK_, NONBLOCK), C(SOCK_, CLOEXEC),
  C(SHUT_, RD), C(SHUT_, WR), C(SHUT_, RDWR),
  C(SOL_, SOCKET), C(SCM_, RIGHTS),
#ifdef SCM_CREDENTIALS
  C(SCM_, CREDENTIALS),
#endif
  C(SO_, REUSEADDR), C(SO_, KEEPALIVE), C(SO_, OOBINLINE), C(SO_, RCVBUF),
  C(SO_, SNDBUF), C(SO_, LINGER), C(SO_, BROADCAST), C(SO_, ERROR), C(SO_, TYPE),
#ifdef SO_REUSEPORT
  C(SO_, REUSEPORT),
#endif
#ifdef SO_PASSCRED
  C(SO_, PASSCRED), C(SO_, PEERCRED),
#endif
  C(IPPROTO_, TCP), C(IPPROTO_, UDP), C(IPPROTO_, IP), C(IPPROTO_, IPV6),
  C(TCP_, NODELAY), C(IPV6_, V6ONLY),
  C(POLL, IN), C(POLL, OUT), C(POLL, PRI), C(POLL, ERR), C(POLL, HUP), C(POLL, NVAL),
  C(O_, RDONLY), C(O_, WRONLY), C(O_, RDWR), C(O_, CREAT), C(O_, EXCL), C(O_, TRUNC),
  C(O_, APPEND), C(O_, NONBLOCK), C(O_, CLOEXEC), C(O_, ASYNC),
  C(F_, GETFD), C(F_, SETFD), C(F_, GETFL), C(F_, SETFL), C(F_, SETOWN), C(F_, GETOWN),
  C(F_, GETLK), C(F_, SETLK), C(F_, SETLKW), C(F_, RDLCK), C(F_, WRLCK), C(F_, UNLCK),
#ifdef F_OFD_SETLK
  C(F_, OFD_GETLK), C(F_, OFD_SETLK), C(F_, OFD_SETLKW),
#endif
  C(FD_, CLOEXEC),
  C(LOCK_, SH), C(LOCK_, EX), C(LOCK_, NB), C(LOCK_, UN),
  C(W, NOHANG), C(W, UNTRACED), C(W, CONTINUED),
  C(SEEK_, SET), C(SEEK_, CUR), C(SEEK_, END),
  {NULL, 0}
};
#undef C

void uipc_setconsts(lua_State *L, const uipc_Const *c) {
  for (; c->name; c++) {
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, c->name);
  }
}

const char *uipc_nameof(const uipc_Const *names, int value) {
  for (; names->name; names++)
    if (names->value == value) return names->name;
  return NULL;
}

/* s[0..n) (no NUL inside) equals name, ignoring case. The first bytes are
   compared first with the ASCII case bit masked off, which settles most
   entries of a table (it never rejects a match; strncasecmp decides) */
static inline int sameword(const char *s, size_t n, const char *name) {
  return ((s[0] ^ name[0]) & ~0x20) == 0 && strncasecmp(s, name, n) == 0 && name[n] == '\0';
}

/* the entry s[0..n) names, ignoring case, with or without the prefix */
static const uipc_Const *findname(const uipc_Const *names, const char *s, size_t n,
                                  const char *prefix) {
  size_t pl = prefix ? strlen(prefix) : 0;
  const char *t = NULL;
  if (n == 0 || memchr(s, '\0', n)) return NULL;
  if (pl && n > pl && strncasecmp(s, prefix, pl) == 0) t = s + pl;
  for (; names->name; names++)
    if ((t && sameword(t, n - pl, names->name)) || sameword(s, n, names->name)) return names;
  return NULL;
}

/* "TERM", "SIGTERM", "term", "RTMIN+2" or a number at idx; errors name argument argn */
int uipc_checksignalas(lua_State *L, int idx, int argn) {
  const uipc_Const *c;
  size_t n;
  const char *s;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer v;
    if (!lua_isinteger(L, idx)) luaL_argerror(L, argn, "signal number must be an integer");
    v = lua_tointeger(L, idx);
    if (v < 1 || v >= NSIG) uipc_argerror(L, argn, "no signal number %d", (int)v);
    return (int)v;
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    uipc_argerror(L, argn, "signal name or number expected, got %s", luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &n);
  if ((c = findname(uipc_signals, s, n, "SIG"))) return c->value;
  if (!memchr(s, '\0', n)) {
    const char *p = s;
    if (n > 3 && strncasecmp(p, "SIG", 3) == 0) p += 3;
    if (strncasecmp(p, "RTMIN", 5) == 0 || strncasecmp(p, "RTMAX", 5) == 0) {
      int base = (toupper((unsigned char)p[3]) == 'I') ? SIGRTMIN : SIGRTMAX;
      char *end;
      long off = p[5] ? strtol(p + 5, &end, 10) : 0;
      if ((!p[5] || *end == '\0') && base + off >= SIGRTMIN && base + off <= SIGRTMAX)
        return (int)(base + off);
    }
  }
  uipc_argerror(L, argn, "unknown signal '%s'", s);
  return 0;
}

int uipc_checksignal(lua_State *L, int idx) {
  return uipc_checksignalas(L, idx, idx);
}

const char *uipc_signame(int signo) {
  static char rt[NSIG][12];
  const char *n = uipc_nameof(uipc_signals, signo);
  if (n) return n;
  if (signo >= SIGRTMIN && signo <= SIGRTMAX && signo < NSIG) {
    if (!rt[signo][0]) snprintf(rt[signo], sizeof rt[signo], "RTMIN+%d", signo - SIGRTMIN);
    return rt[signo];
  }
  return "?";
}

/* one name from a table, case-insensitive; raises listing nothing secret */
int uipc_checkname(lua_State *L, int idx, const uipc_Const *names, const char *what) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  const uipc_Const *c = findname(names, s, n, NULL);
  if (!c) uipc_argerror(L, idx, "unknown %s '%s'", what, s);
  return c->value;
}

/*
 * Flags: nil (0), an integer, or names such as "oob", "MSG_PEEK",
 * "peek|dontwait", "oob, peek".
 */
/* errors name argument argn (a field of a table argument, say) */
int uipc_checkflagsas(lua_State *L, int idx, int argn, const uipc_Const *names, const char *what) {
  const char *s, *p;
  int flags = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
      return 0;
    case LUA_TNUMBER:
      if (!lua_isinteger(L, idx)) uipc_argerror(L, argn, "%s must be an integer", what);
      return (int)lua_tointeger(L, idx);
    case LUA_TSTRING:
      break;
    default:
      uipc_argerror(L, argn, "%s must be a string or integer, got %s", what, luaL_typename(L, idx));
  }
  s = lua_tostring(L, idx);
  for (p = s; *p;) {
    const uipc_Const *c;
    size_t n;
    while (*p == ' ' || *p == ',' || *p == '|') p++;
    if (!*p) break;
    n = strcspn(p, " ,|");
    c = findname(names, p, n, "MSG_");
    if (!c) { /* lua_pushfstring has no %.*s */
      lua_pushlstring(L, p, n);
      uipc_argerror(L, argn, "unknown %s '%s'", what, lua_tostring(L, -1));
    }
    flags |= c->value;
    p += n;
  }
  return flags;
}

int uipc_checkflags(lua_State *L, int idx, const uipc_Const *names, const char *what) {
  return uipc_checkflagsas(L, idx, idx, names, what);
}

/* ---- module-level functions ----------------------------------------- */

static int core_strerror(lua_State *L) {
  lua_pushstring(L, strerror((int)uipc_checkint(L, 1, INT_MIN, INT_MAX, "errno")));
  return 1;
}

/* _openfds() -> {[fd] = target}: the spec helper's leak check */
static int core_openfds(lua_State *L) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int dfd, err;
  if (!d) {
    err = errno;
    return uipc_fail(L, "opendir", err);
  }
  dfd = dirfd(d);
  lua_newtable(L);
  while ((e = readdir(d)) != NULL) {
    char path[64], target[512];
    ssize_t n;
    int fd;
    if (e->d_name[0] == '.') continue;
    fd = atoi(e->d_name);
    if (fd == dfd) continue;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof target - 1);
    if (n < 0) n = 0;
    lua_pushlstring(L, target, (size_t)n);
    lua_rawseti(L, -2, fd);
  }
  closedir(d);
  return 1;
}

/* monotime() -> seconds from CLOCK_MONOTONIC, for deadlines in Lua */
static int core_monotime(lua_State *L) {
  lua_pushnumber(L, uipc_now());
  return 1;
}

/* sleep(seconds): nanosleep, resumed after signals for the time left */
static int core_sleep(lua_State *L) {
  double t = uipc_optseconds(L, 1, "seconds"), deadline;
  if (t < 0) return uipc_argerror(L, 1, "number of seconds expected, got no value");
  deadline = uipc_now() + t;
  for (;;) {
    double left = deadline - uipc_now();
    struct timespec ts;
    if (left <= 0) break;
    if (left > 1e6) left = 1e6; /* huge sleeps go in chunks nanosleep accepts */
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL); /* interrupted or not, the loop computes what is left */
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg corefuncs[] = {
  {"sleep", core_sleep},
  {"strerror", core_strerror},
  {"monotime", core_monotime},
  {"_openfds", core_openfds},
  {NULL, NULL}
};

/* a table {NAME = n, [n] = "NAME"}; the first name of a number wins, so
   aliases (EWOULDBLOCK, SIGIOT) map names to numbers only */
static void newbimap(lua_State *L, const uipc_Const *c) {
  lua_newtable(L);
  for (; c->name; c++) {
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, c->name);
    if (lua_rawgeti(L, -1, c->value) == LUA_TNIL) {
      lua_pushstring(L, c->name);
      lua_rawseti(L, -3, c->value);
    }
    lua_pop(L, 1);
  }
}

static void setsignals(lua_State *L) {
  const uipc_Const *c;
  char buf[32];
  for (c = uipc_signals; c->name; c++) {
    snprintf(buf, sizeof buf, "SIG%s", c->name);
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, buf);
  }
  lua_pushinteger(L, SIGRTMIN);
  lua_setfield(L, -2, "SIGRTMIN");
  lua_pushinteger(L, SIGRTMAX);
  lua_setfield(L, -2, "SIGRTMAX");
  newbimap(L, uipc_signals);
  lua_setfield(L, -2, "signals");
}

__attribute__((visibility("default"))) int luaopen_unixipc_core(lua_State *L) {
  const uipc_Const *c;
  char buf[32];
  lua_newtable(L);
  luaL_setfuncs(L, corefuncs, 0);
  uipc_setconsts(L, modconsts);
  for (c = uipc_msgflags; c->name; c++) {
    snprintf(buf, sizeof buf, "MSG_%s", c->name);
    lua_pushinteger(L, c->value);
    lua_setfield(L, -2, buf);
  }
  newbimap(L, errnames);
  lua_setfield(L, -2, "errno");
  setsignals(L);
  uipc_open_descriptor(L);
  uipc_open_address(L);
  uipc_open_socket(L);
  uipc_open_poll(L);
  uipc_open_message(L);
  uipc_open_process(L);
  uipc_open_signal(L);
  uipc_open_lock(L);
  uipc_open_codec(L);
  lua_pushliteral(L, "unixipc 0.1");
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
