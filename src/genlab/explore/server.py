"""``genlab explore``: load each run once, bind (127.0.0.1 unless told), print the URL and serve."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from pathlib import Path

from ..errors import GenlabError

log = logging.getLogger("genlab")


def _vectors(specs: list[str]) -> dict[str, Path]:
    out = {}
    for spec in specs:
        name, _, file = spec.rpartition("=")
        path = Path(file).expanduser()
        if not path.is_file():
            raise GenlabError(f"--vector {spec}: no such file")
        out[name or path.stem] = path
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only when the proto says TCP
    # (with 0, Nagle and delayed ACKs add 40 ms to every response)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise GenlabError(f"cannot listen on {host}:{port} ({err.strerror}); try another --port") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class Background:
    """A uvicorn server on a bound socket in a daemon thread (tests and benchmarks): ``.url``, ``.stop()``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            threading.Event().wait(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def cmd_explore(args) -> int:
    import torch

    try:
        import uvicorn

        from .app import create_app
    except ImportError as err:
        raise GenlabError(f"genlab explore needs {err.name}: pip install 'genlab[explore]'") from None
    from .session import RunSession

    if args.threads:
        torch.set_num_threads(args.threads)
    vectors = _vectors(args.vector)
    sessions = [RunSession(path, checkpoint=args.checkpoint, vectors=vectors) for path in args.runs]
    if not is_loopback(args.host):
        log.warning("warning: serving on %s: anyone who can reach this address can use the explorer "
                    "(it has no login); the default 127.0.0.1 is reachable from this machine only", args.host)
    sock = bind(args.host, args.port)
    app = create_app(sessions, max_upload=int(args.max_upload * 1e6), hosts=[args.host])
    print(f"genlab explore: {', '.join(s.name for s in sessions)} at {url_of(sock)}  (Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    return 0
