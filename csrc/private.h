/*
 * unixipc — declarations shared by the C core (one file per domain).
 * Only luaopen_unixipc_core is exported; everything here is hidden.
 */
#ifndef UNIXIPC_PRIVATE_H
#define UNIXIPC_PRIVATE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lua.h"
#include "lauxlib.h"

#define UIPC_API __attribute__((visibility("hidden")))

#define UIPC_FD_MT "unixipc.fd"         /* pipes, files, received descriptors */
#define UIPC_SOCKET_MT "unixipc.socket" /* every socket */
#define UIPC_ADDR_MT "unixipc.address"  /* address tables (tostring) */

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

UIPC_API extern const uipc_Class uipc_fdclass; /* descriptors and sockets (uipc_Fd) */

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
 * (usernb || timeout >= 0) -- onb mirrors what we last set. A received
 * descriptor may also carry O_NONBLOCK from its sender (onb set, usernb
 * not): calls then wait out EAGAIN with poll, as a blocking object should.
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
  unsigned gen;          /* bumped when fd comes to stand for another file (dup2 onto it) */
  int family, type;      /* sockets: AF_*, SOCK_* */
  double timeout;        /* seconds, < 0 means none */
  char events[3];        /* cqueues interest: "r", "w", "rw" */
} uipc_Fd;

/* name <-> value tables, closed by {NULL, 0} */
typedef struct uipc_Const {
  const char *name;
  int value;
} uipc_Const;

/* core.c: errors, constants, argument helpers */
UIPC_API int uipc_fail(lua_State *L, const char *op, int err);
UIPC_API int uipc_failmsg(lua_State *L, const char *op, const char *msg, int err);
UIPC_API int uipc_argerror(lua_State *L, int idx, const char *fmt, ...);
UIPC_API int uipc_boolresult(lua_State *L, int r, const char *op);
UIPC_API int uipc_timeout(lua_State *L);
UIPC_API double uipc_now(void);
UIPC_API double uipc_optseconds(lua_State *L, int idx, const char *what);
UIPC_API lua_Integer uipc_checkint(lua_State *L, int idx, lua_Integer min, lua_Integer max,
                                   const char *what);
UIPC_API lua_Integer uipc_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min,
                                 lua_Integer max, const char *what);
UIPC_API const char *uipc_checkpath(lua_State *L, int idx);
/* poll(2) milliseconds until deadline (-1: none), clamped to what poll takes */
UIPC_API int uipc_pollms(double deadline);
/* after a 0-byte read on a seqpacket socket: end of stream (1) or an empty record (0) */
UIPC_API int uipc_seqeof(int fd);
UIPC_API int uipc_checksignal(lua_State *L, int idx);
UIPC_API int uipc_checksignalas(lua_State *L, int idx, int argn);
UIPC_API const char *uipc_signame(int signo);
UIPC_API int uipc_checkflags(lua_State *L, int idx, const uipc_Const *names, const char *what);
UIPC_API int uipc_checkflagsas(lua_State *L, int idx, int argn, const uipc_Const *names,
                               const char *what);
UIPC_API int uipc_checkname(lua_State *L, int idx, const uipc_Const *names, const char *what);
UIPC_API const char *uipc_nameof(const uipc_Const *names, int value);
UIPC_API void uipc_setconsts(lua_State *L, const uipc_Const *c);
UIPC_API extern const uipc_Const uipc_msgflags[];
UIPC_API extern const uipc_Const uipc_signals[];

/* descriptor.c: the object model */
UIPC_API uipc_Fd *uipc_newfd(lua_State *L, int issock);
UIPC_API uipc_Fd *uipc_toobj(lua_State *L, int idx);    /* NULL if not ours */
UIPC_API uipc_Fd *uipc_checkobj(lua_State *L, int idx); /* raises if closed */
UIPC_API uipc_Fd *uipc_checksock(lua_State *L, int idx);
UIPC_API int uipc_checkfd(lua_State *L, int idx);       /* object, io file or integer */
UIPC_API int uipc_wrapfd(lua_State *L, int fd);         /* fd already owned by caller */
UIPC_API void uipc_rewrap(lua_State *L, int idx);       /* after dup2 onto the object */
UIPC_API void uipc_initsock(uipc_Fd *o, int fd);
UIPC_API int uipc_closefd(uipc_Fd *o);
UIPC_API int uipc_setnb(uipc_Fd *o, int on);
UIPC_API int uipc_waitfd(int fd, short events, double deadline);
UIPC_API double uipc_deadline(const uipc_Fd *o);
UIPC_API void uipc_addmethods(lua_State *L, const luaL_Reg *fdm, const luaL_Reg *sockm);
UIPC_API size_t uipc_checksize(lua_State *L, int idx, lua_Integer def, const char *what);
/* one blocking step after a failed call: 0 = try again, else the error
   to report (ETIMEDOUT for a timeout, EAGAIN in non-blocking mode) */
UIPC_API int uipc_block(uipc_Fd *o, int err, short events, double *deadline);
UIPC_API ssize_t uipc_rawwrite(uipc_Fd *o, const char *buf, size_t n, int flags);
UIPC_API ssize_t uipc_writesome(uipc_Fd *o, const char *buf, size_t n, int flags,
                                double *deadline, int *perr);
UIPC_API int uipc_pushwrite(lua_State *L, const char *op, ssize_t r, int err);
UIPC_API int uipc_writeall(lua_State *L, uipc_Fd *o, const char *s, size_t n, int flags,
                           const char *op);

/* descriptor.c: a wrapped descriptor (received, inherited) has its
   O_NONBLOCK read on first need rather than when wrapped (no fcntl per
   received descriptor); call this before reading o->onb or o->usernb
   outside the hot paths that already do (uipc_block, the setters) */
UIPC_API void uipc_nbresolve(uipc_Fd *o);

/* address.c */
UIPC_API int uipc_toaddr(lua_State *L, int idx, int family, int socktype,
                         struct sockaddr_storage *ss, socklen_t *len, int passive);
UIPC_API void uipc_pushaddr(lua_State *L, const struct sockaddr *sa, socklen_t len);
UIPC_API int uipc_addrfail(lua_State *L, const char *op, int gaierr);
UIPC_API int uipc_checkfamily(lua_State *L, int idx);
UIPC_API int uipc_checktype(lua_State *L, int idx);
UIPC_API const char *uipc_typename(int socktype);

/* descriptor.c: read/recv/recvfrom into a fresh string (how: 0, 1, 2) */
UIPC_API int uipc_pushrecv(lua_State *L, uipc_Fd *o, size_t n, int flags, int how);

/* process.c */
UIPC_API int uipc_pushstatus(lua_State *L, pid_t pid, int status);

/* signal.c: the mask the process had before any signal bridge blocked
   signals, and the signals that were ignored before a bridge took them, for
   exec'd programs; returns 0 (and leaves *mask) when no bridge is live */
#include <signal.h>
UIPC_API int uipc_sigsaved(sigset_t *mask, sigset_t *ignored);

/* each domain registers its functions into the module table at -1 */
UIPC_API void uipc_open_descriptor(lua_State *L);
UIPC_API void uipc_open_socket(lua_State *L);
UIPC_API void uipc_open_address(lua_State *L);
UIPC_API void uipc_open_poll(lua_State *L);
UIPC_API void uipc_open_message(lua_State *L);
UIPC_API void uipc_open_process(lua_State *L);
UIPC_API void uipc_open_signal(lua_State *L);
UIPC_API void uipc_open_lock(lua_State *L);

/* codec.c: the channel codec, core._encode and core._decode */
UIPC_API void uipc_open_codec(lua_State *L);

/* EINTR is retried everywhere except close() */
#define UIPC_RETRY(expr) ({ long _r; do _r = (long)(expr); while (_r == -1 && errno == EINTR); _r; })

#endif
