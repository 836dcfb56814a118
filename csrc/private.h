/*
 * unixipc — declarations shared by the C core, listed under the file that
 * defines them. Only luaopen_unixipc_core (core.c) is exported; everything
 * here is hidden.
 *
 *   core.c        the module table: calls every file's uipc_open_*
 *   check.c       errors, argument checks, option tables, flags and names
 *   constants.c   the name tables of every family, written once, and the
 *                 module's constants built from them
 *   wait.c        where a call waits: clocks, deadlines, poll, the
 *                 scheduler hand-off, and the read/write loops built on it
 *   descriptor.c  the object model every descriptor is built on
 *   socket.c address.c message.c poll.c process.c signal.c lock.c codec.c
 *   systemd.c exec.c pidfd.c eventfd.c memfd.c
 *                 one domain each (systemd.c: the environment, socket activation)
 */
#ifndef UNIXIPC_PRIVATE_H
#define UNIXIPC_PRIVATE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lua.h"
#include "lauxlib.h"

#define UIPC_API __attribute__((visibility("hidden")))

#define UIPC_FD_MT "unixipc.fd"         /* pipes, files, received descriptors */
#define UIPC_SOCKET_MT "unixipc.socket" /* every socket */
#define UIPC_ADDR_MT "unixipc.address"  /* address tables (tostring) */

/* EINTR is retried everywhere except close() */
#define UIPC_RETRY(expr) ({ long _r; do _r = (long)(expr); while (_r == -1 && errno == EINTR); _r; })

/*
 * Class tags. Every object struct of ours begins with a pointer to its
 * class's tag, a static in this library; uipc_toclass recognises an object
 * by that tag and the userdata's exact size, not by its metatable. That is
 * two API calls where a metatable test takes four to six, and it is sound:
 * Lua code cannot write a full userdata's bytes (debug.setmetatable can
 * only swap metatables, which would fool a metatable test), a block of
 * another size is never read, and a light userdata has length 0.
 */
typedef struct uipc_Class {
  const char *name; /* what a type error says was expected */
} uipc_Class;

/* the object at idx if it is a full userdata of class cls and this size, else NULL */
static inline void *uipc_toclass(lua_State *L, int idx, const uipc_Class *cls, size_t size) {
  void *p = lua_touserdata(L, idx);
  if (p && lua_rawlen(L, idx) == size && *(const uipc_Class *const *)p == cls) return p;
  return NULL;
}

/*
 * One struct serves descriptor and socket objects; issock (and the
 * metatable, for the methods) says which.
 * fd is -1 once closed. Blocking state is tracked here so hot paths never
 * ask the kernel with fcntl: O_NONBLOCK is on the descriptor when
 * (usernb || timeout >= 0) -- onb mirrors what we last set. A descriptor
 * may also carry O_NONBLOCK that the user did not ask for (from its sender,
 * or set for a task, see wait.c): onb set, usernb not, and calls wait out
 * EAGAIN themselves, as a blocking object should.
 */
typedef struct uipc_Fd {
  const uipc_Class *cls; /* &uipc_fdclass */
  int fd;
  unsigned char issock;  /* socket metatable */
  unsigned char isfifo;  /* pipe/FIFO: writes guard against SIGPIPE */
  unsigned char usernb;  /* setnonblocking(true) */
  unsigned char onb;     /* O_NONBLOCK currently set on fd */
  unsigned char nbunknown; /* wrapped fd: onb/usernb not read yet, see uipc_nbresolve */
  unsigned char fifounknown; /* wrapped non-socket: isfifo not read yet (first write) */
  unsigned char handed;  /* closed by tofile(): the descriptor lives on in an io file */
  unsigned char kind;    /* UIPC_KIND_*: a descriptor with methods of its own (metatable) */
  unsigned gen;          /* bumped when fd comes to stand for another file (dup2 onto it) */
  int family, type;      /* sockets: AF_*, SOCK_* */
  double timeout;        /* seconds, < 0 means none */
  char events[3];        /* cqueues interest: "r", "w", "rw" */
  struct uipc_Bound *bound; /* listen(): the path to unlink at close, or NULL */
} uipc_Fd;

/* ---- check.c: errors, argument checks, option tables, flags, names ---- */

/* nil, "op: strerror(err)", err */
UIPC_API int uipc_fail(lua_State *L, const char *op, int err);
/* the same for errno, read first thing: call it straight after the system call */
UIPC_API int uipc_failerrno(lua_State *L, const char *op);
/* nil, "op what: strerror(err)", err (what: a path, say) */
UIPC_API int uipc_failon(lua_State *L, const char *op, const char *what, int err);
/* nil, "op: msg", err */
UIPC_API int uipc_failmsg(lua_State *L, const char *op, const char *msg, int err);
/* nil, "timeout", ETIMEDOUT */
UIPC_API int uipc_timeout(lua_State *L);
/* true, or uipc_failerrno(op) when r < 0 */
UIPC_API int uipc_boolresult(lua_State *L, int r, const char *op);
/* true, or nil, "op path: strerror(errno)", errno when r < 0 */
UIPC_API int uipc_pathresult(lua_State *L, int r, const char *op, const char *path);
/* "bad argument #argn to 'fn' (fmt ...)", numbered as Lua numbers method arguments */
UIPC_API int uipc_argerror(lua_State *L, int argn, const char *fmt, ...)
    __attribute__((noreturn));

/* s[0..n) pushed for an error message, NUL bytes shown as \0 */
UIPC_API const char *uipc_shown(lua_State *L, const char *s, size_t n);
/* the value at idx as an integer in [min, max]; errors name argument argn
   and state the range: "backlog must be an integer from 0 to 65535, got -1" */
UIPC_API lua_Integer uipc_intarg(lua_State *L, int idx, int argn, lua_Integer min,
                                 lua_Integer max, const char *what);
#define uipc_checkint(L, idx, min, max, what) uipc_intarg(L, idx, idx, min, max, what)
/* the same, def for nil or none */
UIPC_API lua_Integer uipc_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min,
                                 lua_Integer max, const char *what);
/* a byte count: an integer >= 0 (def for nil or none) */
UIPC_API size_t uipc_checksize(lua_State *L, int idx, lua_Integer def, const char *what);
/* seconds >= 0 (a number; math.huge waits for ever); nil or none -> -1 */
UIPC_API double uipc_secondsarg(lua_State *L, int idx, int argn, const char *what);
#define uipc_optseconds(L, idx, what) uipc_secondsarg(L, idx, idx, what)
/* a string without NUL bytes, for a system call */
UIPC_API const char *uipc_checkpath(lua_State *L, int idx);
/* an fopen-style mode ("r", "w+", "a", "rb", "wx", ...) -> open(2) flags */
UIPC_API int uipc_checkmode(lua_State *L, int idx, const char *def);

/*
 * A Lua value that stands for a descriptor: a unixipc object, a Lua io
 * file, a non-negative integer, or a foreign object with getfd() or
 * fileno() (LuaSocket, cqueues), whose method is called. Errors name
 * argument argn, and "fds[elem]" in it when elem >= 0. ref, when not NULL,
 * says what owns the descriptor, so a caller can tell later whether it was
 * closed.
 */
enum { UIPC_REF_INT, UIPC_REF_OBJ, UIPC_REF_FILE, UIPC_REF_FOREIGN };
typedef struct uipc_Ref {
  int kind;   /* UIPC_REF_* */
  void *p;    /* uipc_Fd * or luaL_Stream * (REF_OBJ, REF_FILE), else NULL */
} uipc_Ref;
UIPC_API int uipc_tofd(lua_State *L, int idx, int argn, int elem, uipc_Ref *ref);
#define uipc_checkfd(L, idx) uipc_tofd(L, idx, idx, -1, NULL)

/*
 * Option tables are strict: one walk puts the value of names[k] at stack
 * slot base + k (absent ones nil, the stack grown to fit), and a key that
 * is not in names raises "bad argument #argn to 'fn' (unknown option 'x')".
 * nil or none is an empty table; anything else raises. Returns 1 when a
 * table was given.
 */
typedef struct uipc_Opt {
  const char *name;
  size_t len; /* strlen(name): keys are matched by length and bytes */
} uipc_Opt;
#define UIPC_OPT(s) {s, sizeof(s) - 1}
UIPC_API int uipc_options(lua_State *L, int idx, int argn, const uipc_Opt *names, int base);
/* a boolean option at idx (nil: def) */
UIPC_API int uipc_optbool(lua_State *L, int idx, int argn, const char *what, int def);

/*
 * Names. A family is one table of {POSIX name, short name, value}: the
 * POSIX name ("MSG_PEEK") becomes a module constant, both names are
 * accepted as arguments (any case), and nothing from another family is.
 * An entry without a short name is a constant only; one without a POSIX
 * name is an alias (accepted, no constant). Closed by {NULL, NULL, 0}.
 */
typedef struct uipc_Name {
  const char *posix;
  const char *name;
  int value;
} uipc_Name;

typedef struct uipc_Family {
  const char *what; /* in messages: "unknown wait option 'x'" */
  const uipc_Name *names;
} uipc_Family;

/* the entry s[0..n) names in fam (POSIX or short name, any case), or NULL */
UIPC_API const uipc_Name *uipc_findname(const uipc_Family *fam, const char *s, size_t n);
/* one name (or the number of one) at idx; errors name argument argn */
UIPC_API int uipc_namearg(lua_State *L, int idx, int argn, const uipc_Family *fam);
#define uipc_checkname(L, idx, fam) uipc_namearg(L, idx, idx, fam)
/* flags: nil (0), an integer, or names joined by '|', ',' or spaces */
UIPC_API int uipc_flagsarg(lua_State *L, int idx, int argn, const uipc_Family *fam);
#define uipc_checkflags(L, idx, fam) uipc_flagsarg(L, idx, idx, fam)
/* the short name of value in fam, or NULL */
UIPC_API const char *uipc_nameof(const uipc_Family *fam, int value);

/* ---- constants.c: the families, and the module's constants ----------- */

UIPC_API extern const uipc_Family uipc_afamilies; /* "unix", AF_UNIX, ... */
UIPC_API extern const uipc_Family uipc_socktypes; /* "stream", SOCK_STREAM, ... */
UIPC_API extern const uipc_Family uipc_msgflags;  /* "peek", MSG_PEEK, ... */
UIPC_API extern const uipc_Family uipc_waitflags; /* "nohang", WNOHANG, ... */
UIPC_API extern const uipc_Family uipc_lockops;   /* "ex", LOCK_EX, ... */
UIPC_API extern const uipc_Family uipc_locktypes; /* "write", F_WRLCK, ... */
UIPC_API extern const uipc_Family uipc_whences;   /* "set", SEEK_SET, ... */
UIPC_API extern const uipc_Family uipc_shuthows;  /* "w", SHUT_WR, ... */
/* every family's POSIX names onto the module table at -1 */
UIPC_API void uipc_setconsts(lua_State *L, const uipc_Family *fam);
/* a table {NAME = n, [n] = "NAME"} of a family's POSIX names (the first
   name of a number wins the reverse map) */
UIPC_API void uipc_newbimap(lua_State *L, const uipc_Family *fam, int posix);

/* ---- wait.c: where a call waits -------------------------------------- */

UIPC_API double uipc_now(void); /* CLOCK_MONOTONIC seconds */
/* poll(2) milliseconds until deadline (-1: none), clamped to what poll takes */
UIPC_API int uipc_pollms(double deadline);

/*
 * The state of a call that may wait: its deadline and its progress, kept
 * across a hand-off to a scheduler (see wait.c). A call that waits is
 * written as a body over this state; uipc_waitinit records the arguments,
 * and if the call is suspended inside a task the body runs again from the
 * start with the same arguments and this state restored.
 */
typedef struct uipc_Wait uipc_Wait;
typedef int (*uipc_Body)(lua_State *L, uipc_Wait *w);
typedef struct uipc_Op {
  const char *name; /* "recv": the failure message if its object is closed meanwhile */
  uipc_Body body;
  /* is the call's object (argument 1) closed? NULL: a descriptor object or an
     io file is asked. A call whose object another task closed while it
     waited fails with EBADF, as on a closed descriptor, instead of raising */
  int (*closed)(lua_State *L);
} uipc_Op;
struct uipc_Wait {
  const uipc_Op *op;
  double deadline;   /* -1: none (yet) */
  lua_Integer done;  /* the body's progress: bytes written, a step reached */
  lua_Integer aux;   /* a body's own value kept across a hand-off */
  int nargs;         /* the call's arguments, restored for the body */
  int resumed;       /* the body runs again after a hand-off */
};
static inline void uipc_waitinit(lua_State *L, uipc_Wait *w, const uipc_Op *op) {
  w->op = op;
  w->deadline = -1;
  w->done = 0;
  w->aux = 0;
  w->nargs = lua_gettop(L);
  w->resumed = 0;
}
/* run op's body over a fresh state: the lua_CFunction of a call that may
   wait (inline: with op a constant, the body is called directly) */
static inline int uipc_run(lua_State *L, const uipc_Op *op) {
  uipc_Wait w;
  uipc_waitinit(L, &w, op);
  return op->body(L, &w);
}
/* is a scheduler's waiter installed? */
UIPC_API int uipc_haswaiter(lua_State *L);
/* may this call's waits go to a scheduler (inside a coroutine, with one
   installed)? The main thread answers at once */
static inline int uipc_intask(lua_State *L) {
  return lua_isyieldable(L) && uipc_haswaiter(L);
}

/* wait until fd is ready for events or w->deadline passes: 0 (ready: try
   again), ETIMEDOUT, or an errno. fd < 0 sleeps until the deadline. */
UIPC_API int uipc_wait(lua_State *L, uipc_Wait *w, int fd, short events);
/* the same until `until` (-1: for ever) instead of w's deadline, which is kept */
UIPC_API int uipc_waituntil(lua_State *L, uipc_Wait *w, int fd, short events, double until);
/*
 * One blocking step for object o after a call failed with err: 0 means
 * try again (EINTR, or the descriptor became ready); anything else is the
 * error to report: ETIMEDOUT for a timeout, EAGAIN in non-blocking mode,
 * err itself when it is not a would-block. The deadline comes from the
 * object's timeout at the first wait.
 */
UIPC_API int uipc_block(lua_State *L, uipc_Wait *w, uipc_Fd *o, int err, short events);
/* the failure for a uipc_block result: timeout, or nil, "op: ...", err */
UIPC_API int uipc_waitfail(lua_State *L, const char *op, int err);
/* a sleep of at most secs that a signal may cut short (callers loop) */
UIPC_API void uipc_nap(double secs);
/* the same inside a task is a sleep the other tasks run through; w's
   deadline and progress are kept (the body runs again afterwards) */
UIPC_API void uipc_pause(lua_State *L, uipc_Wait *w, double secs);

UIPC_API void uipc_tasknb(uipc_Fd *o);
/*
 * The flags a call on o adds so that it never blocks in the kernel where
 * it must not (canflag: the call takes MSG_* flags). A socket call passes
 * MSG_DONTWAIT in non-blocking or timeout mode (O_NONBLOCK lives on the
 * open file description, which a dup, a forked child or a receiving
 * process shares and may clear; a flag per call cannot be undone by them)
 * and inside a task. Without flags (read, write on a pipe), a task sets
 * O_NONBLOCK on a blocking object instead (it still behaves as blocking:
 * uipc_block waits out the EAGAIN).
 */
static inline int uipc_callflags(lua_State *L, uipc_Fd *o, int canflag) {
  if (canflag && o->issock) return o->usernb || o->timeout >= 0 || uipc_intask(L) ? MSG_DONTWAIT : 0;
  if (uipc_intask(L)) uipc_tasknb(o);
  return 0;
}
/* one write(2)/send(2) of up to n bytes without SIGPIPE; -1 with errno */
UIPC_API ssize_t uipc_rawwrite(uipc_Fd *o, const char *buf, size_t n, int flags);
/* one write that waits as o does: bytes written, or -1 with *perr */
UIPC_API ssize_t uipc_writesome(lua_State *L, uipc_Wait *w, uipc_Fd *o, const char *buf,
                                size_t n, int flags, int *perr);
/* n, or the failure for a writesome result */
UIPC_API int uipc_pushwrite(lua_State *L, const char *op, ssize_t r, int err);
/* write everything from w->done on: true, or nil, msg, errno, bytes written */
UIPC_API int uipc_writeall(lua_State *L, uipc_Wait *w, uipc_Fd *o, const char *s, size_t n,
                           int flags, const char *op);
/* read/recv/recvfrom (how 0, 1, 2) into a fresh string: data [, addr] */
UIPC_API int uipc_pushrecv(lua_State *L, uipc_Wait *w, uipc_Fd *o, size_t n, int flags, int how);
/* after a 0-byte read on a seqpacket socket: end of stream (1) or an empty record (0) */
UIPC_API int uipc_seqeof(int fd);

/* ---- descriptor.c: the object model ---------------------------------- */

UIPC_API extern const uipc_Class uipc_fdclass; /* descriptors and sockets (uipc_Fd) */
UIPC_API uipc_Fd *uipc_newfd(lua_State *L, int issock);
/* the descriptor object at idx, or NULL if it is not ours */
static inline uipc_Fd *uipc_toobj(lua_State *L, int idx) {
  return (uipc_Fd *)uipc_toclass(L, idx, &uipc_fdclass, sizeof(uipc_Fd));
}
UIPC_API uipc_Fd *uipc_checkobj(lua_State *L, int idx); /* raises if closed */
UIPC_API uipc_Fd *uipc_checksock(lua_State *L, int idx);
UIPC_API int uipc_wrapfd(lua_State *L, int fd);         /* fd already owned by caller */
UIPC_API void uipc_rewrap(lua_State *L, int idx);       /* after dup2 onto the object */
UIPC_API int uipc_closefd(uipc_Fd *o);                  /* 0 or errno; idempotent */
UIPC_API int uipc_setnb(uipc_Fd *o, int on);            /* O_NONBLOCK: 0 or errno */
/* a wrapped descriptor (received, inherited) has its O_NONBLOCK read on
   first need rather than when wrapped (no fcntl per received descriptor);
   call this before reading o->onb or o->usernb outside the paths that
   already do (uipc_block, the setters) */
UIPC_API void uipc_nbresolve(uipc_Fd *o);
/* register methods on descriptor objects (fdm, also on sockets) and sockets only (sockm) */
UIPC_API void uipc_addmethods(lua_State *L, const luaL_Reg *fdm, const luaL_Reg *sockm);
/* the name of a kind of object for "attempt to use a closed ..." */
#define uipc_kindname(o) ((o)->issock ? "socket" : uipc_kindnames[(o)->kind])

/*
 * Kinds: descriptors with methods of their own (a pidfd, an eventfd, a
 * memfd). Each is a plain uipc_Fd -- same class tag, same size, so every
 * descriptor argument, poll and the shared close take it unchanged -- with
 * its own metatable, whose methods come first and fall back to the
 * descriptor methods. o->kind says which, so a kind's method checks its
 * object with one byte rather than a metatable.
 */
enum { UIPC_KIND_FD, UIPC_KIND_PIDFD, UIPC_KIND_EVENTFD, UIPC_KIND_MEMFD, UIPC_NKINDS };
UIPC_API extern const char *const uipc_kindnames[UIPC_NKINDS]; /* "descriptor", "pidfd", ... */
/* make kind's metatable ("unixipc.<name>"): methods, then the descriptor
   methods; tostring may be NULL (the descriptor one); nuv user values */
UIPC_API void uipc_newkind(lua_State *L, int kind, const luaL_Reg *methods,
                           lua_CFunction tostring, int nuv);
/* a new object of kind, not yet open (fd -1), with its user values */
UIPC_API uipc_Fd *uipc_newkindfd(lua_State *L, int kind);
/* the open object of kind at idx, or raise (wrong kind, closed) */
UIPC_API uipc_Fd *uipc_checkkind(lua_State *L, int idx, int kind);
/* give the descriptor object at idx kind (its metatable too) */
UIPC_API void uipc_setkind(lua_State *L, int idx, int kind);
/* the kind the kernel says fd is (an eventfd, a memfd, a pidfd), or UIPC_KIND_FD */
UIPC_API int uipc_probekind(int fd);

/* ---- socket.c -------------------------------------------------------- */

/* a socket made here (socket, socketpair, accept): its state as created */
UIPC_API void uipc_initsock(uipc_Fd *o, int fd, int family, int type, int nonblock,
                            double timeout);

/* ---- address.c ------------------------------------------------------- */

/* Fill ss/len from the address at idx (errors name argument argn) for a
   socket of the given family (AF_UNSPEC: any). Misuse raises; a name that
   does not resolve returns its getaddrinfo code for uipc_addrfail. */
UIPC_API int uipc_toaddr(lua_State *L, int idx, int argn, int family, int socktype,
                         struct sockaddr_storage *ss, socklen_t *len, int passive);
UIPC_API void uipc_pushaddr(lua_State *L, const struct sockaddr *sa, socklen_t len);
/* nil, "op: message", code: a resolver failure has a negative code
   (ipc.EAI_*), a system one (EAI_SYSTEM) its positive errno */
UIPC_API int uipc_addrfail(lua_State *L, const char *op, int gaierr);

/* ---- process.c ------------------------------------------------------- */

/* push pid, how, code for a wait status ("exit", "signal", "stop", "continue") */
UIPC_API int uipc_pushstatus(lua_State *L, pid_t pid, int status);

/* ---- exec.c: running programs ------------------------------------------ */

/*
 * What a new process does before it runs: the descriptors it gets at given
 * numbers (the dup2 shuffle, cycles and overlaps included), optionally
 * nothing else (close_range), setsid, chdir, a parent-death signal. The
 * same steps serve exec (in this process), popen's child (clone + exec)
 * and spawn's child (fork, then Lua). Filled in the parent by
 * uipc_plancheck; uipc_planapply runs in the child, allocates nothing and
 * calls only async-signal-safe functions.
 */
typedef struct uipc_FdMove {
  int target, source; /* the new program's descriptor target is now source's file */
} uipc_FdMove;
typedef struct uipc_Plan {
  uipc_FdMove *map; /* sorted by target */
  int *moved;       /* scratch, one per entry */
  int nmap;
  int exact;        /* close every descriptor that is not a target */
  int setsid;
  int pdeathsig;    /* 0: none */
  pid_t parent;     /* the parent's pid, recorded before fork (pdeathsig's race) */
  const char *cwd;  /* NULL: stay */
  int fdlimit;      /* RLIMIT_NOFILE, for closing without close_range */
  int keep;         /* exact plans: a descriptor to keep open too (-1: none) */
  /* the step that failed in the child, and its errno */
  volatile int stage, err, where;
} uipc_Plan;
enum { UIPC_STAGE_NONE, UIPC_STAGE_SETSID, UIPC_STAGE_PDEATHSIG, UIPC_STAGE_CHDIR,
       UIPC_STAGE_DUP, UIPC_STAGE_EXEC };
/* read the options {fds =, cwd =, setsid =, pdeathsig =} at base.. (names in
   uipc_Opt order: fds, cwd, setsid, pdeathsig; absent ones nil); argn names
   the options' argument in errors. Scratch lives in userdata anchored at
   anchor. */
UIPC_API void uipc_plancheck(lua_State *L, int base, int argn, int anchor, uipc_Plan *p);
/* in the child: every step; 0, or -1 with p->stage / p->err / p->where set */
UIPC_API int uipc_planapply(uipc_Plan *p);
/* nil, message, errno for the step of p that failed (op names the call) */
UIPC_API int uipc_planfail(lua_State *L, const uipc_Plan *p, const char *path);

/* ---- pidfd.c ---------------------------------------------------------- */

/* pidfd_open / CLONE_PIDFD usable here? (false on old kernels, or forced for tests) */
UIPC_API int uipc_havepidfd(void);
/* a new pidfd object for pid (fd -1 until the caller sets it) */
UIPC_API uipc_Fd *uipc_newpidfd(lua_State *L, pid_t pid);

/* ---- signal.c -------------------------------------------------------- */

/* "TERM", "SIGTERM", "term", "RTMIN+2" or a number at idx; errors name argn */
UIPC_API int uipc_signalarg(lua_State *L, int idx, int argn);
#define uipc_checksignal(L, idx) uipc_signalarg(L, idx, idx)
UIPC_API const char *uipc_signame(int signo);
/* the signal argument of a kill: a name or number, 0 (a probe), default TERM */
UIPC_API int uipc_killsig(lua_State *L, int idx);
/* the mask the process had before any signal bridge blocked signals, and
   the signals that were ignored before a bridge took them, for exec'd
   programs; returns 0 (and leaves *mask) when no bridge is live */
UIPC_API int uipc_sigsaved(sigset_t *mask, sigset_t *ignored);

/* ---- each file registers its functions into the module table at -1 --- */

UIPC_API void uipc_open_constants(lua_State *L);
UIPC_API void uipc_open_wait(lua_State *L);
UIPC_API void uipc_open_descriptor(lua_State *L);
UIPC_API void uipc_open_socket(lua_State *L);
UIPC_API void uipc_open_address(lua_State *L);
UIPC_API void uipc_open_poll(lua_State *L);
UIPC_API void uipc_open_message(lua_State *L);
UIPC_API void uipc_open_process(lua_State *L);
UIPC_API void uipc_open_signal(lua_State *L);
UIPC_API void uipc_open_lock(lua_State *L);
UIPC_API void uipc_open_codec(lua_State *L);
UIPC_API void uipc_open_systemd(lua_State *L);
UIPC_API void uipc_open_exec(lua_State *L);
UIPC_API void uipc_open_pidfd(lua_State *L);
UIPC_API void uipc_open_eventfd(lua_State *L);
UIPC_API void uipc_open_memfd(lua_State *L);

#endif
