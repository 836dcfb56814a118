/*
 * Signals through a descriptor, and the asynchronous socket events that
 * raise them (F_SETOWN, O_ASYNC, sockatmark).
 *
 * ipc.signalfd(signals) makes a "bridge": the signals arrive as records on
 * a pollable descriptor and are read one at a time with sig:read().
 *  - Linux: the signals are blocked and read from a signalfd.
 *  - -DUNIXIPC_SELFPIPE (and systems without signalfd): a sigaction handler
 *    writes one fixed-size record per delivery into a non-blocking pipe.
 *    The handler only saves errno, copies siginfo into the record, calls
 *    write(2) and restores errno: no Lua code ever runs inside it.
 *
 * Live bridges are kept in a static list: it answers "is this signal
 * already bridged", lets a forked child drop every bridge (_sigreset), and
 * gives exec the mask the process had before any bridge (uipc_sigsaved).
 * A signal belongs to at most one live bridge at a time.
 */
#include "private.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(UNIXIPC_SELFPIPE) && !defined(__linux__)
#define UNIXIPC_SELFPIPE 1
#endif
#ifndef UNIXIPC_SELFPIPE
#include <sys/signalfd.h>
#define BRIDGE_KIND "signalfd"
#else
#define BRIDGE_KIND "selfpipe"
#endif

#define SIGNAL_MT "unixipc.signal"

typedef struct Bridge {
  int fd;              /* signalfd, or the pipe's read end; -1 once closed */
  int wfd;             /* self-pipe write end; -1 with signalfd */
  unsigned char drain; /* signalfd: discard still-pending signals on close */
  char events[3];      /* cqueues interest, always "r" */
  sigset_t set;        /* the bridged signals */
  /* the signals whose mask bit this bridge flipped: the ones it blocked
     (signalfd) or the ones it had to unblock for its handler (self-pipe) */
  sigset_t changed;
  sigset_t ignored;    /* signalfd: were SIG_IGN, set to SIG_DFL while bridged */
  struct Bridge *next; /* live list */
} Bridge;

static Bridge *live; /* every open bridge */

/*
 * The Lua object is a box pointing at a malloc'd Bridge, which __gc frees.
 * The live list must never point into memory the collector can free
 * without asking us: a bridge whose metatable was taken away with
 * debug.setmetatable is then leaked open, like a forgotten descriptor,
 * rather than freed while still listed.
 */
typedef struct {
  const uipc_Class *cls; /* &bridgeclass */
  Bridge *b;             /* NULL once collected */
} Box;

static const uipc_Class bridgeclass = {SIGNAL_MT};

/* what a box shows once its bridge is freed: closed */
static Bridge gone = {.fd = -1, .wfd = -1};

/* one signal as read from the bridge */
typedef struct Rec {
  int signo, code, pid, uid, status, fd, value;
  long band;
} Rec;

/* ---- names ----------------------------------------------------------------- */

/* every signal: SIGTERM as a constant, "TERM" as its name; aliases last */
#define S(n) {"SIG" #n, #n, SIG##n}
static const uipc_Family signals = {"signal", (const uipc_Name[]){
  S(HUP), S(INT), S(QUIT), S(ILL), S(TRAP), S(ABRT), S(BUS), S(FPE), S(KILL), S(USR1),
  S(SEGV), S(USR2), S(PIPE), S(ALRM), S(TERM),
#ifdef SIGSTKFLT
  S(STKFLT),
#endif
  S(CHLD), S(CONT), S(STOP), S(TSTP), S(TTIN), S(TTOU), S(URG), S(XCPU), S(XFSZ), S(VTALRM),
  S(PROF), S(WINCH), S(IO),
#ifdef SIGPWR
  S(PWR),
#endif
  S(SYS),
#ifdef SIGPOLL
  S(POLL),
#endif
  S(IOT), S(CLD),
  {NULL, NULL, 0}}};
#undef S

int uipc_signalarg(lua_State *L, int idx, int argn) {
  const uipc_Name *c;
  size_t n;
  const char *s, *p;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)uipc_intarg(L, idx, argn, 1, NSIG - 1, "signal number");
  if (lua_type(L, idx) != LUA_TSTRING)
    uipc_argerror(L, argn, "signal name or number expected, got %s", luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &n);
  if ((c = uipc_findname(&signals, s, n)) != NULL) return c->value;
  p = s;
  if (!memchr(s, '\0', n)) { /* RTMIN, RTMIN+n, RTMAX, RTMAX-n, with or without SIG */
    if (n > 3 && strncasecmp(p, "SIG", 3) == 0) p += 3;
    if (strncasecmp(p, "RTMIN", 5) == 0 || strncasecmp(p, "RTMAX", 5) == 0) {
      int base = (toupper((unsigned char)p[3]) == 'I') ? SIGRTMIN : SIGRTMAX;
      char *end;
      long off = p[5] ? strtol(p + 5, &end, 10) : 0;
      /* off is range-checked before it is added: strtol clamps at LONG_MAX */
      if ((!p[5] || *end == '\0') && off > -NSIG && off < NSIG && base + off >= SIGRTMIN &&
          base + off <= SIGRTMAX)
        return (int)(base + off);
    }
  }
  uipc_argerror(L, argn, "unknown signal '%s'", uipc_shown(L, s, n));
  return 0;
}

int uipc_killsig(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return SIGTERM;
  if (lua_isinteger(L, idx) && lua_tointeger(L, idx) == 0) return 0;
  return uipc_signalarg(L, idx, idx);
}

const char *uipc_signame(int signo) {
  static char rt[NSIG][12];
  const char *n = uipc_nameof(&signals, signo);
  if (n) return n;
  if (signo >= SIGRTMIN && signo <= SIGRTMAX && signo < NSIG) {
    if (!rt[signo][0]) snprintf(rt[signo], sizeof rt[signo], "RTMIN+%d", signo - SIGRTMIN);
    return rt[signo];
  }
  return "?";
}

/* ---- siginfo layouts ---------------------------------------------------- */

static int isfault(int signo) {
  return signo == SIGSEGV || signo == SIGBUS || signo == SIGILL || signo == SIGFPE ||
         signo == SIGTRAP;
}

/* which union member of siginfo is meaningful (after the kernel's siginfo_layout) */
enum { L_NONE, L_KILL, L_RT, L_CHLD, L_POLL };

static int layout(int signo, int code) {
  if (code > SI_USER && code < SI_KERNEL) {
    if (signo == SIGCHLD) return L_CHLD;
    if (isfault(signo)) return L_NONE;
    return code <= POLL_HUP ? L_POLL : L_NONE;
  }
#ifdef SI_SIGIO
  if (code == SI_SIGIO) return L_POLL;
#endif
  if (code == SI_TIMER) return L_NONE;
  if (code == SI_USER) return L_KILL;
  if (code < 0) return L_RT;
  return L_NONE; /* SI_KERNEL */
}

/* ---- the self-pipe handler --------------------------------------------- */

/* dispositions to restore, per signal (a signal has one bridge at most) */
static struct sigaction oldact[NSIG];

#ifdef UNIXIPC_SELFPIPE
/* write end + 1 of the bridge holding each signal, 0 for none */
static volatile sig_atomic_t pipewfd[NSIG];

/*
 * Async-signal-safe: no locks, no allocation, no Lua. A record is smaller
 * than PIPE_BUF, so the write is atomic; on a full pipe (EAGAIN) the
 * delivery is dropped, as a pending standard signal would be coalesced.
 */
static void sp_handler(int signo, siginfo_t *si, void *uc) {
  int saved = errno;
  int fd = (signo > 0 && signo < NSIG) ? (int)pipewfd[signo] - 1 : -1;
  (void)uc;
  if (fd >= 0) {
    Rec r = {0, 0, 0, 0, 0, 0, 0, 0};
    r.signo = signo;
    if (si) {
      r.code = si->si_code;
      switch (layout(signo, si->si_code)) {
        case L_CHLD:
          r.status = si->si_status;
          /* fall through */
        case L_KILL:
        case L_RT:
          r.pid = (int)si->si_pid;
          r.uid = (int)si->si_uid;
          r.value = si->si_value.sival_int;
          break;
        case L_POLL:
          r.fd = si->si_fd;
          r.band = si->si_band;
          break;
        default: break;
      }
    }
    if (write(fd, &r, sizeof r) < 0) { /* full pipe: dropped */
    }
  }
  errno = saved;
}
#endif

/* ---- bridge life cycle -------------------------------------------------- */

static void unlinklive(Bridge *b) {
  Bridge **p;
  for (p = &live; *p; p = &(*p)->next)
    if (*p == b) {
      *p = b->next;
      break;
    }
  b->next = NULL;
}

/*
 * Close a bridge and put back what it changed; 0 or the close errno.
 * Signalfd: still-pending signals of the bridge are consumed first (when
 * drain), so unblocking them does not run their default action now; then
 * the SIG_IGN dispositions come back, then the mask.
 * Self-pipe: the signals it unblocked are blocked again before the old
 * dispositions return, so nothing slips through to the wrong handler.
 */
static int bridge_close(Bridge *b, int drain) {
  int err = 0, s;
  if (b->fd < 0) return 0;
  unlinklive(b);
#ifdef UNIXIPC_SELFPIPE
  (void)drain;
  sigprocmask(SIG_BLOCK, &b->changed, NULL);
  for (s = 1; s < NSIG; s++)
    if (sigismember(&b->set, s) == 1) {
      sigaction(s, &oldact[s], NULL);
      pipewfd[s] = 0;
    }
  close(b->wfd);
  b->wfd = -1;
#else
  if (drain) {
    struct timespec zero = {0, 0};
    int any = 0;
    for (s = 1; s < NSIG && !any; s++) any = sigismember(&b->changed, s) == 1;
    while (any && (sigtimedwait(&b->changed, NULL, &zero) > 0 || errno == EINTR)) {
    }
  }
#endif
  if (close(b->fd) < 0 && errno != EINTR) err = errno;
  b->fd = -1;
#ifndef UNIXIPC_SELFPIPE
  for (s = 1; s < NSIG; s++)
    if (sigismember(&b->ignored, s) == 1) sigaction(s, &oldact[s], NULL);
  sigprocmask(SIG_UNBLOCK, &b->changed, NULL);
#endif
  return err;
}

/* the mask before any live bridge touched it, for exec'd programs */
int uipc_sigsaved(sigset_t *mask, sigset_t *ignored) {
  sigset_t cur;
  Bridge *b;
  int s;
  sigemptyset(ignored);
  if (!live) return 0;
  /* bridged signals that were ignored before the bridge (oldact holds the
     disposition each bridge replaced) */
  for (b = live; b; b = b->next)
    for (s = 1; s < NSIG; s++)
      if (sigismember(&b->set, s) == 1 && !(oldact[s].sa_flags & SA_SIGINFO) &&
          oldact[s].sa_handler == SIG_IGN)
        sigaddset(ignored, s);
  sigprocmask(SIG_BLOCK, NULL, &cur);
  for (b = live; b; b = b->next)
    for (s = 1; s < NSIG; s++)
      if (sigismember(&b->changed, s) == 1) {
#ifdef UNIXIPC_SELFPIPE
        sigaddset(&cur, s);
#else
        sigdelset(&cur, s);
#endif
      }
  *mask = cur;
  return 1;
}

/* ---- argument checks ------------------------------------------------------ */

/* one signal of the list: uipc_checksignal's checks, as argument #1 */
static int listsignal(lua_State *L, int vidx) {
  int s = uipc_signalarg(L, vidx, 1);
  if (s == SIGKILL || s == SIGSTOP)
    uipc_argerror(L, 1, "signal %s cannot be caught or blocked", uipc_signame(s));
  if (s > 31 && s < SIGRTMIN)
    uipc_argerror(L, 1, "signal %d is reserved by the C library", s);
  return s;
}

static void checksignals(lua_State *L, sigset_t *set) {
  Bridge *b;
  int s;
  sigemptyset(set);
  if (lua_istable(L, 1)) {
    lua_Integer i, n = luaL_len(L, 1);
    if (n < 1) uipc_argerror(L, 1, "empty signal list");
    for (i = 1; i <= n; i++) {
      lua_geti(L, 1, i);
      sigaddset(set, listsignal(L, lua_gettop(L)));
      lua_pop(L, 1);
    }
  } else if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    sigaddset(set, listsignal(L, 1));
  else
    uipc_argerror(L, 1, "list of signal names or numbers expected, got %s", luaL_typename(L, 1));
  for (b = live; b; b = b->next)
    for (s = 1; s < NSIG; s++)
      if (sigismember(set, s) == 1 && sigismember(&b->set, s) == 1)
        uipc_argerror(L, 1, "signal %s is already bridged by another live signalfd", uipc_signame(s));
}

static const uipc_Opt signalfdopts[] = {UIPC_OPT("drain"), {NULL, 0}};

/* opts: {drain = bool} */
static int checkopts(lua_State *L, int idx) {
  int base = lua_gettop(L) + 1, drain;
  uipc_options(L, idx, idx, signalfdopts, base);
  drain = uipc_optbool(L, base, idx, "drain", 1);
  lua_settop(L, base - 1);
  return drain;
}

/* ---- ipc.signalfd ---------------------------------------------------------- */

static Bridge *tobridge(lua_State *L, int idx) {
  Box *x = (Box *)uipc_toclass(L, idx, &bridgeclass, sizeof(Box));
  if (!x) luaL_typeerror(L, idx, bridgeclass.name);
  return x->b ? x->b : &gone;
}

static Bridge *checkbridge(lua_State *L, int idx) {
  Bridge *b = tobridge(L, idx);
  if (b->fd < 0) luaL_error(L, "attempt to use a closed signal bridge");
  return b;
}

/* signalfd(signals [, {drain = true}]) -> bridge */
static int ipc_signalfd(lua_State *L) {
  sigset_t set, cur;
  Bridge *b;
  int drain, s, err;
  checksignals(L, &set);
  drain = checkopts(L, 2);
  {
    Box *x = (Box *)lua_newuserdatauv(L, sizeof(Box), 0);
    x->cls = &bridgeclass;
    x->b = NULL;
    if ((b = (Bridge *)malloc(sizeof *b)) == NULL) return luaL_error(L, "not enough memory");
    x->b = b;
  }
  b->fd = b->wfd = -1;
  b->drain = (unsigned char)drain;
  b->events[0] = 'r';
  b->events[1] = b->events[2] = '\0';
  b->set = set;
  b->next = NULL;
  sigemptyset(&b->changed);
  sigemptyset(&b->ignored);
  luaL_setmetatable(L, SIGNAL_MT);
  sigprocmask(SIG_BLOCK, NULL, &cur);
#ifdef UNIXIPC_SELFPIPE
  {
    struct sigaction sa;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
      err = errno;
      return uipc_fail(L, "pipe", err);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sp_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (s = 1; s < NSIG; s++) {
      if (sigismember(&set, s) != 1) continue;
      pipewfd[s] = p[1] + 1;
      if (sigaction(s, &sa, &oldact[s]) < 0) {
        int t;
        err = errno;
        pipewfd[s] = 0;
        for (t = 1; t < s; t++)
          if (sigismember(&set, t) == 1) {
            sigaction(t, &oldact[t], NULL);
            pipewfd[t] = 0;
          }
        close(p[0]);
        close(p[1]);
        return uipc_fail(L, "sigaction", err);
      }
      /* the handler only runs for unblocked signals */
      if (sigismember(&cur, s) == 1) sigaddset(&b->changed, s);
    }
    b->fd = p[0];
    b->wfd = p[1];
    sigprocmask(SIG_UNBLOCK, &set, NULL);
  }
#else
  /* block first: a signal arriving before the fd exists stays pending for it */
  for (s = 1; s < NSIG; s++)
    if (sigismember(&set, s) == 1 && sigismember(&cur, s) != 1) sigaddset(&b->changed, s);
  sigprocmask(SIG_BLOCK, &set, NULL);
  b->fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (b->fd < 0) {
    err = errno;
    sigprocmask(SIG_UNBLOCK, &b->changed, NULL);
    return uipc_fail(L, "signalfd", err);
  }
  /*
   * Blocked signals queue even when ignored, except SIGCHLD: with SIG_IGN
   * the kernel reaps children itself and sends nothing. Ignored signals
   * get SIG_DFL while bridged (blocked, so the default action never runs).
   */
  for (s = 1; s < NSIG; s++) {
    struct sigaction cur_sa, dfl;
    if (sigismember(&set, s) != 1 || sigaction(s, NULL, &cur_sa) < 0) continue;
    if ((cur_sa.sa_flags & SA_SIGINFO) || cur_sa.sa_handler != SIG_IGN) continue;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    oldact[s] = cur_sa;
    if (sigaction(s, &dfl, NULL) == 0) sigaddset(&b->ignored, s);
  }
#endif
  b->next = live;
  live = b;
  return 1;
}

/* one record, or an errno (EAGAIN when none is pending) */
static int readrec(Bridge *b, Rec *r) {
#ifdef UNIXIPC_SELFPIPE
  ssize_t n = read(b->fd, r, sizeof *r);
  if (n == (ssize_t)sizeof *r) return 0;
  return n < 0 ? errno : EIO;
#else
  struct signalfd_siginfo si;
  ssize_t n = read(b->fd, &si, sizeof si);
  if (n != (ssize_t)sizeof si) return n < 0 ? errno : EIO;
  r->signo = (int)si.ssi_signo;
  r->code = si.ssi_code;
  r->pid = (int)si.ssi_pid;
  r->uid = (int)si.ssi_uid;
  r->status = si.ssi_status;
  r->fd = si.ssi_fd;
  r->band = (long)si.ssi_band;
  r->value = si.ssi_int;
  return 0;
#endif
}

/*
 * The record's field names live in the methods' upvalues: a raw set with an
 * interned key skips the string lookup lua_setfield does for every field.
 */
static const char *const recnames[] = {"signo", "name", "code", "pid", "uid", "status",
                                       "value", "fd", "band", "how", NULL};
enum { K_SIGNO = 1, K_NAME, K_CODE, K_PID, K_UID, K_STATUS, K_VALUE, K_FD, K_BAND, K_HOW, K_END };

static void setint(lua_State *L, int k, lua_Integer v) {
  lua_pushvalue(L, lua_upvalueindex(k));
  lua_pushinteger(L, v);
  lua_rawset(L, -3);
}

static void pushrec(lua_State *L, const Rec *r) {
  int lay = layout(r->signo, r->code);
  lua_createtable(L, 0, 7);
  setint(L, K_SIGNO, r->signo);
  lua_pushvalue(L, lua_upvalueindex(K_NAME));
  lua_pushstring(L, uipc_signame(r->signo));
  lua_rawset(L, -3);
  setint(L, K_CODE, r->code);
  if (lay == L_POLL) {
    setint(L, K_PID, 0);
    setint(L, K_UID, 0);
    setint(L, K_FD, r->fd);
    setint(L, K_BAND, r->band);
    return;
  }
  setint(L, K_PID, lay == L_NONE ? 0 : r->pid);
  setint(L, K_UID, lay == L_NONE ? 0 : r->uid);
  if (lay == L_CHLD) {
    static const char *const hows[] = {"?", "exit", "signal", "signal", "stop", "stop", "continue"};
    setint(L, K_STATUS, r->status);
    lua_pushvalue(L, lua_upvalueindex(K_HOW));
    lua_pushstring(L, r->code >= CLD_EXITED && r->code <= CLD_CONTINUED ? hows[r->code] : "?");
    lua_rawset(L, -3);
  }
  if (lay == L_RT) setint(L, K_VALUE, r->value);
}

/*
 * sig:read([timeout]) -> {signo=, name=, code=, pid=, uid=, status= (CHLD),
 * fd=, band= (IO), value= (sigqueue)} | nil, "timeout", ETIMEDOUT.
 * timeout nil waits forever, 0 never waits. The descriptor is non-blocking,
 * so a pending signal costs one read(2) and no poll.
 */
static int sig_read_body(lua_State *L, uipc_Wait *w) {
  Bridge *b = checkbridge(L, 1);
  double t = uipc_optseconds(L, 2, "timeout");
  Rec r = {0, 0, 0, 0, 0, 0, 0, 0};
  if (t > 0 && !w->resumed) w->deadline = uipc_now() + t;
  for (;;) {
    int err = readrec(b, &r);
    if (!err) break;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) return uipc_fail(L, "read", err);
    if (t == 0) return uipc_timeout(L);
    if ((err = uipc_wait(L, w, b->fd, POLLIN)) != 0) return uipc_waitfail(L, "poll", err);
  }
  pushrec(L, &r);
  return 1;
}

static int sig_closed(lua_State *L) {
  return tobridge(L, 1)->fd < 0;
}

static const uipc_Op sig_read_op = {"read", sig_read_body, sig_closed};

/* (a continuation restores the upvalues: the body reads them afresh) */
static int sig_read(lua_State *L) {
  return uipc_run(L, &sig_read_op);
}

static int sig_close(lua_State *L) {
  Bridge *b = tobridge(L, 1);
  int err = bridge_close(b, b->drain);
  if (err) return uipc_fail(L, "close", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int sig_gc(lua_State *L) {
  Box *x = (Box *)uipc_toclass(L, 1, &bridgeclass, sizeof(Box));
  if (x && x->b) {
    bridge_close(x->b, x->b->drain);
    free(x->b);
    x->b = NULL;
  }
  return 0;
}

/* __close: like close(), errors ignored; the object stays usable (closed) */
static int sig_closemeta(lua_State *L) {
  Bridge *b = tobridge(L, 1);
  bridge_close(b, b->drain);
  return 0;
}

static int sig_tostring(lua_State *L) {
  Bridge *b = tobridge(L, 1);
  if (b->fd < 0)
    lua_pushliteral(L, "signal (closed)");
  else
    lua_pushfstring(L, "signal (" BRIDGE_KIND ", fd %d)", b->fd);
  return 1;
}

static int sig_fileno(lua_State *L) {
  lua_pushinteger(L, checkbridge(L, 1)->fd);
  return 1;
}

/* LuaSocket's select protocol: -1 once closed */
static int sig_getfd(lua_State *L) {
  lua_pushinteger(L, tobridge(L, 1)->fd);
  return 1;
}

/* cqueues protocol: always readable interest */
static int sig_events(lua_State *L) {
  lua_pushstring(L, checkbridge(L, 1)->events);
  return 1;
}

static int sig_timeout(lua_State *L) {
  checkbridge(L, 1);
  lua_pushnil(L);
  return 1;
}

/* sig:signals() -> list of the bridged signal names */
static int sig_signals(lua_State *L) {
  Bridge *b = checkbridge(L, 1);
  int s, n = 0;
  lua_newtable(L);
  for (s = 1; s < NSIG; s++)
    if (sigismember(&b->set, s) == 1) {
      lua_pushstring(L, uipc_signame(s));
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

/* ---- children and forks ---------------------------------------------------- */

/*
 * reap() -> {{pid=, how=, code=}, ...}: every child that has ended, by
 * waitpid(-1, WNOHANG) until none is left. SIGCHLD coalesces, so one
 * signal may stand for several children: always reap in a loop.
 */
static int ipc_reap(lua_State *L) {
  int n = 0;
  lua_newtable(L);
  for (;;) {
    int status = 0, err;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0) break;
    if (pid < 0) {
      err = errno;
      if (err == EINTR) continue;
      if (err == ECHILD) break;
      return uipc_fail(L, "waitpid", err);
    }
    lua_createtable(L, 0, 3);
    luaL_checkstack(L, 4, NULL);
    uipc_pushstatus(L, pid, status);
    lua_setfield(L, -4, "code");
    lua_setfield(L, -3, "how");
    lua_setfield(L, -2, "pid");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/*
 * _sigreset(): in a child right after fork, drop every bridge inherited
 * from the parent: its signals unblocked (or dispositions restored), its
 * descriptors closed, its objects closed. Returns how many were dropped.
 */
static int ipc_sigreset(lua_State *L) {
  int n = 0;
  while (live) {
    bridge_close(live, 0);
    n++;
  }
  lua_pushinteger(L, n);
  return 1;
}

/* ---- asynchronous descriptor events ------------------------------------------ */

/* o:setowner([pid]): who gets SIGIO/SIGURG; a negative pid is a process group */
static int fd_setowner(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  lua_Integer pid = lua_isnoneornil(L, 2) ? getpid() : uipc_checkint(L, 2, -0x7fffffff, 0x7fffffff, "pid");
  int r;
#ifdef F_SETOWN_EX
  {
    struct f_owner_ex ow;
    ow.type = pid < 0 ? F_OWNER_PGRP : F_OWNER_PID;
    ow.pid = (pid_t)(pid < 0 ? -pid : pid);
    r = fcntl(o->fd, F_SETOWN_EX, &ow);
  }
#else
  r = fcntl(o->fd, F_SETOWN, (int)pid);
#endif
  if (r < 0) return uipc_failerrno(L, "fcntl");
  lua_pushboolean(L, 1);
  return 1;
}

/* o:getowner() -> pid (negative for a process group, 0 for none) */
static int fd_getowner(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  lua_Integer pid;
#ifdef F_GETOWN_EX
  struct f_owner_ex ow;
  if (fcntl(o->fd, F_GETOWN_EX, &ow) < 0) return uipc_failerrno(L, "fcntl");
  pid = ow.type == F_OWNER_PGRP ? -(lua_Integer)ow.pid : (lua_Integer)ow.pid;
#else
  errno = 0;
  pid = fcntl(o->fd, F_GETOWN);
  if (pid == -1 && errno) return uipc_failerrno(L, "fcntl");
#endif
  lua_pushinteger(L, pid);
  return 1;
}

/*
 * o:setasync(on [, signal]): O_ASYNC, other status flags kept (O_NONBLOCK
 * stays as descriptor.c set it). Linux: signal (F_SETSIG) picks the signal
 * sent instead of SIGIO; naming any signal, SIGIO included, makes the
 * kernel fill in fd and band.
 */
static int fd_setasync(lua_State *L) {
  uipc_Fd *o = uipc_checkobj(L, 1);
  int on, fl, sig = -1;
  if (!lua_isboolean(L, 2))
    return uipc_argerror(L, 2, "boolean expected, got %s", luaL_typename(L, 2));
  on = lua_toboolean(L, 2);
  if (!lua_isnoneornil(L, 3)) {
#ifdef F_SETSIG
    sig = (lua_type(L, 3) == LUA_TNUMBER && lua_tointeger(L, 3) == 0) ? 0 : uipc_checksignal(L, 3);
#else
    return uipc_argerror(L, 3, "F_SETSIG is not available on this system");
#endif
  }
#ifdef F_SETSIG
  if (sig >= 0 && fcntl(o->fd, F_SETSIG, sig) < 0) return uipc_failerrno(L, "fcntl");
#endif
  fl = fcntl(o->fd, F_GETFL);
  if (fl < 0 || fcntl(o->fd, F_SETFL, on ? (fl | O_ASYNC) : (fl & ~O_ASYNC)) < 0)
    return uipc_failerrno(L, "fcntl");
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:atmark() -> bool: is the read pointer at the urgent mark */
static int sock_atmark(lua_State *L) {
  uipc_Fd *o = uipc_checksock(L, 1);
  int r = sockatmark(o->fd);
  if (r < 0) return uipc_failerrno(L, "sockatmark");
  lua_pushboolean(L, r);
  return 1;
}

/* ---- registration ------------------------------------------------------------ */

static const luaL_Reg sigmethods[] = {
  {"read", sig_read},
  {"close", sig_close},
  {"fileno", sig_fileno},
  {"getfd", sig_getfd},
  {"pollfd", sig_fileno},
  {"events", sig_events},
  {"timeout", sig_timeout},
  {"signals", sig_signals},
  {NULL, NULL}
};

static const luaL_Reg sigmeta[] = {
  {"__gc", sig_gc},
  {"__close", sig_closemeta},
  {"__tostring", sig_tostring},
  {NULL, NULL}
};

static const luaL_Reg fdmethods[] = {
  {"setowner", fd_setowner},
  {"getowner", fd_getowner},
  {"setasync", fd_setasync},
  {NULL, NULL}
};

static const luaL_Reg sockmethods[] = {
  {"atmark", sock_atmark},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"signalfd", ipc_signalfd},
  {"reap", ipc_reap},
  {"_sigreset", ipc_sigreset},
  {NULL, NULL}
};

void uipc_open_signal(lua_State *L) {
  const char *const *k;
  uipc_setconsts(L, &signals);
  lua_pushinteger(L, SIGRTMIN);
  lua_setfield(L, -2, "SIGRTMIN");
  lua_pushinteger(L, SIGRTMAX);
  lua_setfield(L, -2, "SIGRTMAX");
  uipc_newbimap(L, &signals, 0);
  lua_setfield(L, -2, "signals");
  luaL_newmetatable(L, SIGNAL_MT);
  luaL_setfuncs(L, sigmeta, 0);
  lua_newtable(L);
  for (k = recnames; *k; k++) lua_pushstring(L, *k);
  luaL_setfuncs(L, sigmethods, K_END - 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  uipc_addmethods(L, fdmethods, sockmethods);
  luaL_setfuncs(L, funcs, 0);
}
