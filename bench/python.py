"""Python standard-library versions of the bench loops.

Usage: python3 bench/python.py LOOP SECONDS   -> "ok OPS WALL CPU" | "na REASON"
       python3 bench/python.py httpd PORTFILE -> ThreadingHTTPServer for wrk
       python3 bench/python.py httpka PORTFILE [PROCS] -> asyncio keep-alive server, PROCS processes
"""
import fcntl
import os
import select
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import Connection

now = time.perf_counter
cpu = time.process_time


def out(ops, el, c0):
    """ "ok OPS WALL CPU": wall-clock and process CPU seconds"""
    print("ok %d %.6f %.6f" % (ops, el, cpu() - c0), flush=True)


def run(secs, batch, body):
    body()
    ops, t0, c0 = 0, now(), cpu()
    while True:
        for _ in range(batch):
            body()
        ops += batch
        el = now() - t0
        if el >= secs:
            break
    out(ops, el, c0)


MSG64 = b"x" * 64


def child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def sendrecv(secs):
    a, b = socket.socketpair()

    def body():
        a.send(MSG64)
        b.recv(64)
    run(secs, 100, body)


def bulk(secs):
    a, b = socket.socketpair()
    chunk = b"b" * 65536

    def writer():
        b.close()
        try:
            while True:
                a.sendall(chunk)
        except OSError:
            pass
    pid = child(writer)
    a.close()
    nbytes, t0, c0 = 0, now(), cpu()
    while True:
        for _ in range(16):
            nbytes += len(b.recv(65536))
        el = now() - t0
        if el >= secs:
            break
    b.close()
    os.waitpid(pid, 0)
    out(nbytes, el, c0)


def pingpong(secs):
    a, b = socket.socketpair()

    def echo():
        b.close()
        try:
            while True:
                s = a.recv(64)
                if not s:
                    break
                a.send(s)
        except OSError:
            pass
    pid = child(echo)
    a.close()

    def body():
        b.send(MSG64)
        b.recv(64)
    run(secs, 100, body)
    b.close()
    os.waitpid(pid, 0)


def fdpass(secs):
    if not hasattr(socket, "send_fds"):
        print("na needs Python 3.9+ (socket.send_fds)")
        return
    a, b = socket.socketpair()
    fd = os.open("/dev/null", os.O_RDONLY)

    def body():
        socket.send_fds(a, [b"x"], [fd])
        _, fds, _, _ = socket.recv_fds(b, 64, 1)
        os.close(fds[0])
    run(secs, 100, body)


def lockfile():
    f = tempfile.TemporaryFile()
    return f


def flock(secs):
    f = lockfile()
    fd = f.fileno()

    def body():
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
    run(secs, 100, body)


def fcntl_(secs):
    f = lockfile()
    fd = f.fileno()

    def body():
        fcntl.lockf(fd, fcntl.LOCK_EX)
        fcntl.lockf(fd, fcntl.LOCK_UN)
    run(secs, 100, body)


def fork(secs):
    def body():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    run(secs, 10, body)


def signal_(secs):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    me, usr1, waitset = os.getpid(), signal.SIGUSR1, {signal.SIGUSR1}

    def body():
        os.kill(me, usr1)
        signal.sigwait(waitset)
    run(secs, 100, body)


def channel(secs):
    a, b = socket.socketpair()
    ca, cb = Connection(a.detach()), Connection(b.detach())
    value = {"id": 1, "name": "bench", "ok": True, "list": [1, 2, 3]}

    def body():
        ca.send(value)
        cb.recv()
    run(secs, 100, body)


def poll(secs):
    p, keep = select.poll(), []
    for i in range(500):
        if i == 250:  # the ready one in the middle, as in C
            w, r = socket.socketpair()
            w.send(b"x")
            p.register(r, select.POLLIN)
        a, b = socket.socketpair()
        keep += [a, b]
        p.register(a, select.POLLIN)
        p.register(b, select.POLLIN)
    rfd = r.fileno()

    def body():
        assert p.poll(0)[0][0] == rfd
    run(secs, 10, body)


def httpd(portfile):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes
        body = b"Hello, world\n"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile, "w") as f:
        f.write("%d\n%d\n" % (srv.server_address[1], os.getpid()))
    srv.serve_forever()


def httpka(portfile, procs=2):
    """asyncio streams, keep-alive: procs processes sharing one listener"""
    import asyncio

    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
             b"Hello, world\n")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)

    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    pids = [os.getpid()]
    for _ in range(procs - 1):
        pid = os.fork()
        if pid == 0:
            asyncio.run(main())
            os._exit(0)
        pids.append(pid)
    with open(portfile, "w") as f:
        f.write("%d\n%s\n" % (sock.getsockname()[1], " ".join(map(str, pids))))
    asyncio.run(main())
# ---- issue 14 (appended) ---------------------------------------------------

def popen(secs):
    import subprocess
    argv = ["/bin/true"]
    run(secs, 1, lambda: subprocess.run(argv))


def execute(secs):
    run(secs, 1, lambda: os.system("/bin/true"))


def pidfd(secs):
    if not hasattr(os, "pidfd_open"):
        print("na no os.pidfd_open")
        return

    def body():
        a, b = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        b.close()
        fd = os.pidfd_open(pid)
        p = select.poll()
        p.register(fd, select.POLLIN)
        p.poll()
        os.waitid(os.P_PIDFD, fd, os.WEXITED)
        os.close(fd)
        a.close()
    run(secs, 10, body)


BIG = 64 << 20


def bigvalue(secs, memfd):
    if memfd and not hasattr(os, "memfd_create"):
        print("na no os.memfd_create")
        return
    a, b = socket.socketpair()
    value = b"v" * BIG

    def sender():
        b.close()
        try:
            if memfd:
                seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
                while True:
                    fd = os.memfd_create("bench", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
                    os.write(fd, value)
                    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
                    socket.send_fds(a, [BIG.to_bytes(4, "little")], [fd])
                    os.close(fd)
            else:
                ca = Connection(a.detach())
                while True:
                    ca.send_bytes(value)
        except OSError:
            pass
    pid = child(sender)
    a.close()
    import mmap
    ops, t0, c0 = 0, now(), cpu()
    if memfd:
        while True:
            msg, fds, _, _ = socket.recv_fds(b, 4, 1)
            fd = fds[0]
            if not fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE:
                raise RuntimeError("not sealed")
            n = os.fstat(fd).st_size
            with mmap.mmap(fd, n, prot=mmap.PROT_READ) as m:
                v = m[:]
            os.close(fd)
            assert len(v) == BIG
            ops += 1
            el = now() - t0
            if el >= secs:
                break
    else:
        cb = Connection(b.detach())
        while True:
            v = cb.recv_bytes()
            assert len(v) == BIG
            ops += 1
            el = now() - t0
            if el >= secs:
                break
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    out(ops, el, c0)


def bigmemfd(secs):
    bigvalue(secs, True)


def bigsocket(secs):
    bigvalue(secs, False)


LOOPS = {
    "sendrecv": sendrecv, "bulk": bulk, "pingpong": pingpong, "fdpass": fdpass,
    "flock": flock, "fcntl": fcntl_, "fork": fork, "signal": signal_,
    "channel": channel, "poll": poll,
    "popen": popen, "execute": execute, "pidfd": pidfd, "bigmemfd": bigmemfd, "bigsocket": bigsocket,
}

if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "httpd":
        httpd(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "httpka":
        httpka(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    elif len(sys.argv) >= 3 and sys.argv[1] in LOOPS:
        LOOPS[sys.argv[1]](float(sys.argv[2]))
    else:
        print("na not available in Python")
