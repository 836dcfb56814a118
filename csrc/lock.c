/*
 * File locks: flock(2), fcntl(2) record locks (F_SETLK/F_SETLKW) and
 * open-file-description locks (F_OFD_SETLK/F_OFD_SETLKW), as lock objects.
 *
 * A lock object borrows the descriptor it was taken through; it never dups
 * it (that would cost two syscalls per lock and keep the open file
 * description alive after the user closed the file, changing the kernel's
 * semantics). Instead it keeps a reference to the file *object* (user value
 * 1) and a pointer to its state, so release() can tell whether that object
 * was closed since: if so the kernel has already done what closing does
 * (see the README, File locks) and release() makes no syscall at all, so it can never
 * unlock another file that reused the descriptor number. With a bare
 * integer descriptor there is no owner to ask; the caller keeps it open.
 */
#include "private.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_MT "unixipc.lock"

enum { K_FLOCK, K_POSIX, K_OFD };        /* kind of lock */
enum { OWN_INT, OWN_OBJ, OWN_FILE };     /* what the descriptor came from */
enum { W_BLOCK, W_NONE, W_TIMED };       /* how to wait */

typedef struct Lock {
  const uipc_Class *cls; /* &lockclass */
  int fd;              /* descriptor it was taken through; -1 once released */
  unsigned char kind;  /* K_* */
  unsigned char owner; /* OWN_* */
  short type;          /* LOCK_SH/LOCK_EX (flock) or F_RDLCK/F_WRLCK */
  void *ref;           /* uipc_Fd * or luaL_Stream *, kept alive by user value 1 */
  pid_t pid;           /* the process that took it */
  unsigned gen;        /* OWN_OBJ: the object's gen when it was taken */
  off_t start, len;    /* absolute range (whence resolved, len >= 0) */
} Lock;

typedef struct Opts {
  short type;
  int whence, ofd, wait, waitset; /* waitset: the options named wait */
  lua_Integer start, len;
  double secs;
} Opts;

/* the first retry of a timed wait comes after BACKOFF_MIN, doubling up to BACKOFF_MAX */
#define BACKOFF_MIN 0.001
#define BACKOFF_MAX 0.010

static const uipc_Class lockclass = {"unixipc lock"};

/*
 * Every function here carries the two lock metatables as upvalues. A held
 * lock has MT_LOCK (with __gc); release() switches it to MT_DONE, the same
 * class without __gc, so the collector makes no finalizer call for the
 * common released-then-dropped object (Lua looks __gc up when it finalizes).
 */
#define MT_LOCK lua_upvalueindex(1)
#define MT_DONE lua_upvalueindex(2)

/*
 * This process's pid without a syscall per lock (getpid costs as much as
 * flock itself): cached in a page the kernel wipes to zeros in a forked
 * child (MADV_WIPEONFORK), so a zero means "ask again", whoever forked.
 * Without MADV_WIPEONFORK every call asks the kernel.
 */
static pid_t *volatile pidpage;

static pid_t mypid(void) {
  pid_t *pp = pidpage;
  if (!pp) return getpid();
  if (!*pp) *pp = getpid();
  return *pp;
}

static void initpid(void) {
#ifdef MADV_WIPEONFORK
  size_t size = (size_t)sysconf(_SC_PAGESIZE);
  void *m;
  pid_t *expect = NULL;
  if (pidpage) return;
  m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return;
  /* another thread loading the module at once may win: keep one page */
  if (madvise(m, size, MADV_WIPEONFORK) < 0 ||
      !__atomic_compare_exchange_n(&pidpage, &expect, (pid_t *)m, 0, __ATOMIC_SEQ_CST,
                                   __ATOMIC_SEQ_CST))
    munmap(m, size);
#endif
}

/* ---- arguments ------------------------------------------------------- */

/* descriptor argument 1: fd, and what owns it (objects are borrowed, not copied) */
static inline __attribute__((always_inline)) int checkfile(lua_State *L, unsigned char *owner, void **ref) {
  uipc_Ref r;
  int fd = uipc_tofd(L, 1, 1, -1, &r);
  *owner = r.kind == UIPC_REF_OBJ ? OWN_OBJ : r.kind == UIPC_REF_FILE ? OWN_FILE : OWN_INT;
  *ref = r.p;
  return fd;
}

static void optwait(lua_State *L, int idx, int argn, Opts *op) {
  if (lua_isnil(L, idx)) return;
  op->waitset = 1;
  if (lua_isboolean(L, idx)) {
    op->wait = lua_toboolean(L, idx) ? W_BLOCK : W_NONE;
    return;
  }
  if (lua_type(L, idx) == LUA_TNUMBER) {
    double t = uipc_secondsarg(L, idx, argn, "option 'wait'");
    if (t == HUGE_VAL) {
      op->wait = W_BLOCK;
    } else {
      op->wait = W_TIMED;
      op->secs = t;
    }
    return;
  }
  uipc_argerror(L, argn, "option 'wait' must be a boolean or a number of seconds, got %s",
                luaL_typename(L, idx));
}

/* the options, in the order of their stack slots */
static const uipc_Opt optnames[] = {UIPC_OPT("type"), UIPC_OPT("start"), UIPC_OPT("len"),
                                    UIPC_OPT("whence"), UIPC_OPT("wait"), UIPC_OPT("ofd"),
                                    {NULL, 0}};
enum { O_TYPE, O_START, O_LEN, O_WHENCE, O_WAIT, O_OFD };

/* the options table at idx (nil or absent: defaults); unknown keys, and
   known ones this function does not take (allowed: bits of 1 << O_*), raise */
static void checkopts(lua_State *L, int idx, int allowed, Opts *op) {
  int base, k;
  op->type = F_WRLCK;
  op->whence = SEEK_SET;
  op->ofd = 0;
  op->wait = W_BLOCK;
  op->waitset = 0;
  op->start = op->len = 0;
  op->secs = 0;
  if (lua_isnoneornil(L, idx)) return; /* the common case: no walk */
  base = lua_gettop(L) + 1;
  uipc_options(L, idx, idx, optnames, base);
  for (k = O_TYPE; k <= O_OFD; k++)
    if (!lua_isnil(L, base + k) && !(allowed & (1 << k)))
      uipc_argerror(L, idx, "unknown option '%s'", optnames[k].name);
  if (!lua_isnil(L, base + O_TYPE))
    op->type = (short)uipc_namearg(L, base + O_TYPE, idx, &uipc_locktypes);
  if (!lua_isnil(L, base + O_START))
    op->start = uipc_intarg(L, base + O_START, idx, LUA_MININTEGER, LUA_MAXINTEGER, "option 'start'");
  if (!lua_isnil(L, base + O_LEN))
    op->len = uipc_intarg(L, base + O_LEN, idx, LUA_MININTEGER, LUA_MAXINTEGER, "option 'len'");
  if (!lua_isnil(L, base + O_WHENCE)) op->whence = uipc_namearg(L, base + O_WHENCE, idx, &uipc_whences);
  optwait(L, base + O_WAIT, idx, op);
  op->ofd = uipc_optbool(L, base + O_OFD, idx, "ofd", 0);
  lua_settop(L, base - 1);
}

/*
 * Resolve whence and a negative len into an absolute range now, as the
 * kernel does at the start of the call; the lock object must unlock exactly
 * this range later, whatever the file offset or size becomes. 0 or errno.
 */
static int resolve(int fd, const Opts *op, struct flock *fl) {
  off_t base = 0, start, len = (off_t)op->len;
  if ((lua_Integer)(off_t)op->start != op->start || (lua_Integer)len != op->len) return EOVERFLOW;
  if (op->whence == SEEK_CUR) {
    if ((base = lseek(fd, 0, SEEK_CUR)) < 0) return errno;
  } else if (op->whence == SEEK_END) {
    struct stat st;
    if (fstat(fd, &st) < 0) return errno;
    base = st.st_size;
  }
  if (__builtin_add_overflow(base, (off_t)op->start, &start)) return EOVERFLOW;
  if (len < 0) {
    if (__builtin_add_overflow(start, len, &start) || __builtin_sub_overflow(0, len, &len))
      return EINVAL;
  }
  if (start < 0) return EINVAL;
  memset(fl, 0, sizeof *fl);
  fl->l_type = op->type;
  fl->l_whence = SEEK_SET;
  fl->l_start = start;
  fl->l_len = len;
  return 0;
}

/* ---- taking and dropping --------------------------------------------- */

static int setcmd(int kind, int block) {
#ifdef F_OFD_SETLK
  if (kind == K_OFD) return block ? F_OFD_SETLKW : F_OFD_SETLK;
#endif
  (void)kind;
  return block ? F_SETLKW : F_SETLK;
}

/* one attempt: 0 or errno (EINTR included) */
static int attempt(int kind, int fd, int how, struct flock *fl, int block) {
  int r;
#ifndef F_OFD_SETLK
  if (kind == K_OFD) return EINVAL;
#endif
  if (kind == K_FLOCK)
    r = flock(fd, how | (block ? 0 : LOCK_NB));
  else
    r = fcntl(fd, setcmd(kind, block), fl);
  return r < 0 ? errno : 0;
}

/*
 * Take the lock: 0, or the errno to report (ETIMEDOUT for a timed wait that
 * ran out). A timed wait polls with non-blocking attempts and a backoff
 * sleep against the monotonic clock, so it arms no timer and installs no
 * handler; it notices a release within BACKOFF_MAX. Inside a task every
 * wait is such a wait, with cooperative sleeps (and no deadline for
 * wait = true): the other tasks run meanwhile. w->done keeps the backoff
 * (microseconds) across a hand-off.
 */
static int take(lua_State *L, uipc_Wait *w, int kind, int fd, int how, struct flock *fl,
                const Opts *op) {
  int err;
  if (op->wait == W_NONE || (op->wait == W_BLOCK && !uipc_intask(L))) {
    do
      err = attempt(kind, fd, how, fl, op->wait == W_BLOCK);
    while (err == EINTR);
    return err;
  }
  if (!w->resumed) {
    w->deadline = op->wait == W_TIMED ? uipc_now() + op->secs : -1;
    w->done = (lua_Integer)(BACKOFF_MIN * 1e6);
  }
  for (;;) {
    double left = 1e9, pause = (double)w->done / 1e6;
    err = attempt(kind, fd, how, fl, 0);
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK && err != EACCES) return err;
    if (w->deadline >= 0 && (left = w->deadline - uipc_now()) <= 0) return ETIMEDOUT;
    if ((w->done *= 2) > (lua_Integer)(BACKOFF_MAX * 1e6)) w->done = (lua_Integer)(BACKOFF_MAX * 1e6);
    uipc_pause(L, w, pause < left ? pause : left);
  }
}

/* is the descriptor the lock was taken through still the one we were given? */
static int stillopen(const Lock *l, int fd) {
  if (l->owner == OWN_OBJ) {
    const uipc_Fd *o = (const uipc_Fd *)l->ref;
    return o->fd == fd && o->gen == l->gen;
  }
  if (l->owner == OWN_FILE) {
    const luaL_Stream *p = (const luaL_Stream *)l->ref;
    return p->closef != NULL && fileno(p->f) == fd;
  }
  return 1;
}

/* release once: 0 or errno */
static int drop(Lock *l) {
  int fd = l->fd;
  struct flock fl;
  long r;
  if (fd < 0) return 0;
  l->fd = -1;
  if (!stillopen(l, fd)) /* closed: the lock went with it, unless tofile() kept it alive */
    return l->owner == OWN_OBJ && ((const uipc_Fd *)l->ref)->handed ? EBADF : 0;
  if (l->kind == K_FLOCK) {
    r = UIPC_RETRY(flock(fd, LOCK_UN));
  } else {
    /* a forked child never held its parent's record locks: nothing to drop */
    if (l->kind == K_POSIX && mypid() != l->pid) return 0;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = l->start;
    fl.l_len = l->len;
    r = UIPC_RETRY(fcntl(fd, setcmd(l->kind, 0), &fl));
  }
  return r < 0 ? errno : 0;
}

/*
 * A new lock object on top of the stack, referencing argument 1. It gets
 * its metatable from held() once the lock is taken: until then it is inert
 * garbage that needs no finalizer.
 */
static inline __attribute__((always_inline)) Lock *newlock(lua_State *L, int kind, unsigned char owner, void *ref) {
  Lock *l = (Lock *)lua_newuserdatauv(L, sizeof(Lock), 1);
  l->cls = &lockclass;
  l->fd = -1;
  l->kind = (unsigned char)kind;
  l->owner = owner;
  l->ref = ref;
  l->type = 0;
  l->pid = 0;
  l->gen = owner == OWN_OBJ ? ((const uipc_Fd *)ref)->gen : 0;
  l->start = l->len = 0;
  if (owner != OWN_INT) {
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
  }
  return l;
}

/* the lock is taken: arm the finalizer (setmetatable cannot fail) */
static int held(lua_State *L) {
  lua_pushvalue(L, MT_LOCK);
  lua_setmetatable(L, -2);
  return 1;
}

static int lockfail(lua_State *L, const char *op, int err) {
  if (err == ETIMEDOUT) return uipc_timeout(L);
  return uipc_fail(L, op, err);
}

/* ---- module functions ------------------------------------------------ */

/* the lock mode: "ex" | "sh" | LOCK_EX | LOCK_SH, with "nb" / LOCK_NB
   meaning wait = false (unless the options say otherwise) */
static int flockmode(lua_State *L, Opts *op) {
  size_t n;
  const char *mode;
  int how;
  if (lua_type(L, 2) == LUA_TSTRING) { /* the usual "ex" and "sh" without a table walk */
    mode = lua_tolstring(L, 2, &n);
    if (n == 2 && mode[0] == 'e' && mode[1] == 'x') return LOCK_EX;
    if (n == 2 && mode[0] == 's' && mode[1] == 'h') return LOCK_SH;
  }
  if (lua_isnoneornil(L, 2)) uipc_argerror(L, 2, "lock mode expected (\"ex\" or \"sh\"), got no value");
  how = uipc_flagsarg(L, 2, 2, &uipc_lockops);
  if ((how & ~LOCK_NB) != LOCK_EX && (how & ~LOCK_NB) != LOCK_SH)
    uipc_argerror(L, 2, "lock mode must be \"ex\" or \"sh\" (LOCK_EX or LOCK_SH, optionally with LOCK_NB)");
  if ((how & LOCK_NB) && !op->waitset) op->wait = W_NONE;
  return how & ~LOCK_NB;
}

/* flock(file, "ex" | "sh" [, {wait = true | false | seconds}]) -> lock */
static int flock_body(lua_State *L, uipc_Wait *w) {
  unsigned char owner;
  void *ref;
  int fd = checkfile(L, &owner, &ref), how, err;
  Opts op;
  Lock *l;
  checkopts(L, 3, 1 << O_WAIT, &op);
  how = flockmode(L, &op); /* an explicit wait wins over nb */
  l = newlock(L, K_FLOCK, owner, ref);
  if ((err = take(L, w, K_FLOCK, fd, how, NULL, &op)) != 0) return lockfail(L, "flock", err);
  l->fd = fd;
  l->type = (short)how;
  l->pid = mypid();
  return held(L);
}

/* lock(file [, {type, start, len, whence, wait, ofd}]) -> lock */
static int lock_body(lua_State *L, uipc_Wait *w) {
  unsigned char owner;
  void *ref;
  int fd = checkfile(L, &owner, &ref), err, kind;
  struct flock fl;
  Opts op;
  Lock *l;
  checkopts(L, 2, 0x3f, &op);
  kind = op.ofd ? K_OFD : K_POSIX;
  l = newlock(L, kind, owner, ref);
  /* a range relative to the file position or size is the one they gave
     when the call was made: a retry after a hand-off (a task waiting for
     the lock) takes the start resolved then, whatever another task did to
     the position or the size meanwhile */
  if (w->resumed && op.whence != SEEK_SET) {
    op.whence = SEEK_SET;
    op.start = w->aux;
    if (op.len < 0) op.len = -op.len; /* resolve() took it once: no overflow */
  }
  if ((err = resolve(fd, &op, &fl)) != 0) return lockfail(L, "fcntl", err);
  w->aux = (lua_Integer)fl.l_start;
  if ((err = take(L, w, kind, fd, 0, &fl, &op)) != 0) return lockfail(L, "fcntl", err);
  l->fd = fd;
  l->type = op.type;
  l->pid = mypid();
  l->start = fl.l_start;
  l->len = fl.l_len;
  return held(L);
}

/* testlock(file [, {type, start, len, whence, ofd}]) -> nil | {type, pid, start, len} */
static int ipc_testlock(lua_State *L) {
  unsigned char owner;
  void *ref;
  int fd = checkfile(L, &owner, &ref), err, cmd = F_GETLK;
  struct flock fl;
  Opts op;
  checkopts(L, 2, 0x3f & ~(1 << O_WAIT), &op);
  if ((err = resolve(fd, &op, &fl)) != 0) return uipc_fail(L, "fcntl", err);
  if (op.ofd) {
#ifdef F_OFD_GETLK
    cmd = F_OFD_GETLK;
#else
    return uipc_fail(L, "fcntl", EINVAL);
#endif
  }
  if (UIPC_RETRY(fcntl(fd, cmd, &fl)) < 0) return uipc_failerrno(L, "fcntl");
  if (fl.l_type == F_UNLCK) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, fl.l_type == F_WRLCK ? "write" : "read");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, fl.l_pid); /* -1 for an OFD lock: no single owner */
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, (lua_Integer)fl.l_start);
  lua_setfield(L, -2, "start");
  lua_pushinteger(L, (lua_Integer)fl.l_len);
  lua_setfield(L, -2, "len");
  return 1;
}

static const uipc_Op flock_op = {"flock", flock_body, NULL}, lock_op = {"fcntl", lock_body, NULL};
static int ipc_flock(lua_State *L) { return uipc_run(L, &flock_op); }
static int ipc_lock(lua_State *L) { return uipc_run(L, &lock_op); }

/* ---- lock objects ---------------------------------------------------- */

static Lock *tolock(lua_State *L) {
  return (Lock *)uipc_toclass(L, 1, &lockclass, sizeof(Lock));
}

static Lock *checklock(lua_State *L) {
  Lock *l = tolock(L);
  if (!l) luaL_typeerror(L, 1, lockclass.name);
  return l;
}

/* release() -> true; again -> true; a failed unlock -> nil, msg, errno */
static int lock_release(lua_State *L) {
  Lock *l = checklock(L);
  int err = drop(l);
  lua_pushvalue(L, MT_DONE);
  lua_setmetatable(L, 1);
  if (err == EBADF && l->owner == OWN_OBJ && ((const uipc_Fd *)l->ref)->handed)
    return uipc_failmsg(L, "release", "the descriptor was handed to an io file by tofile(); "
                        "the lock stays until that file is closed", EBADF);
  if (err) return uipc_fail(L, l->kind == K_FLOCK ? "flock" : "fcntl", err);
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * The collector releases a lock only in the process that took it: a forked
 * child holds copies of its parent's lock objects, and collecting one there
 * must not unlock the flock or OFD lock the parent still relies on (they
 * share the open file description). An explicit release() acts anyway.
 */
static int lock_gc(lua_State *L) {
  Lock *l = tolock(L);
  if (l && l->fd >= 0) {
    if (l->pid == mypid())
      drop(l);
    else
      l->fd = -1;
  }
  return 0;
}

/* __close: like release(), errors ignored (a scope exit must not raise) */
static int lock_close(lua_State *L) {
  Lock *l = tolock(L);
  if (l) {
    drop(l);
    lua_pushvalue(L, MT_DONE);
    lua_setmetatable(L, 1);
  }
  return 0;
}

static int lock_tostring(lua_State *L) {
  Lock *l = checklock(L);
  if (l->fd < 0)
    lua_pushliteral(L, "lock (released)");
  else if (l->kind == K_FLOCK)
    lua_pushfstring(L, "lock (flock %s, fd %d)", l->type == LOCK_EX ? "ex" : "sh", l->fd);
  else {
    char range[64];
    if (l->len == 0)
      snprintf(range, sizeof range, "%lld-EOF", (long long)l->start);
    else
      snprintf(range, sizeof range, "%lld-%lld", (long long)l->start,
               (long long)(l->start + l->len - 1));
    lua_pushfstring(L, "lock (%s %s %s, fd %d)", l->kind == K_OFD ? "ofd" : "fcntl",
                    l->type == F_WRLCK ? "write" : "read", range, l->fd);
  }
  return 1;
}

static const luaL_Reg lockmethods[] = {
  {"release", lock_release},
  {NULL, NULL}
};

static const luaL_Reg lockmeta[] = {
  {"__close", lock_close},
  {"__tostring", lock_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"flock", ipc_flock},
  {"lock", ipc_lock},
  {"testlock", ipc_testlock},
  {NULL, NULL}
};

static void pushupvalues(lua_State *L, int mt, int done) {
  lua_pushvalue(L, mt);
  lua_pushvalue(L, done);
}

/* fill a lock metatable at idx (the held one gets __gc) */
static void fillmeta(lua_State *L, int idx, int mt, int done, int methods) {
  lua_pushvalue(L, idx);
  pushupvalues(L, mt, done);
  luaL_setfuncs(L, lockmeta, 2);
  if (idx == mt) {
    pushupvalues(L, mt, done);
    lua_pushcclosure(L, lock_gc, 2);
    lua_setfield(L, -2, "__gc");
  }
  lua_pushvalue(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void uipc_open_lock(lua_State *L) {
  int mod = lua_gettop(L), mt, done, methods;
  initpid();
  luaL_newmetatable(L, LOCK_MT);
  mt = lua_gettop(L);
  lua_newtable(L);
  done = lua_gettop(L);
  lua_newtable(L);
  methods = lua_gettop(L);
  fillmeta(L, mt, mt, done, methods);
  fillmeta(L, done, mt, done, methods);
  lua_pushliteral(L, LOCK_MT);
  lua_setfield(L, done, "__name");
  lua_pushvalue(L, methods);
  pushupvalues(L, mt, done);
  luaL_setfuncs(L, lockmethods, 2);
  lua_pushvalue(L, mod);
  pushupvalues(L, mt, done);
  luaL_setfuncs(L, funcs, 2);
  lua_settop(L, mod);
}
