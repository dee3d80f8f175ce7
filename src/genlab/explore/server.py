"""The explorer's server: load each run once, bind (127.0.0.1 unless told) and serve (``serve``); ``Background``
runs it in a thread for tests and benchmarks."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
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


def serve(runs: list[str | Path], *, host: str = "127.0.0.1", port: int = 8765, checkpoint: str = "best",
          vectors: list[str] = (), max_upload_mb: float = 2.0, threads: int | None = None,
          ready: Callable[[str, list[str]], None] | None = None) -> None:
    """Load each run once, bind ``host:port`` (loopback unless told) and serve the explorer until stopped;
    ``ready(url, run names)`` is called once the socket listens. ``vectors``: ``[NAME=]FILE.npz`` attribute
    vectors saved by ``genlab attribute --save``."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as err:
        raise GenlabError(f"genlab explore needs {err.name}: pip install 'genlab[explore]'") from None
    import torch

    from .session import RunSession

    if threads:
        torch.set_num_threads(threads)
    named_vectors = _vectors(list(vectors))
    sessions = [RunSession(path, checkpoint=checkpoint, vectors=named_vectors) for path in runs]
    if not is_loopback(host):
        log.warning("warning: serving on %s: anyone who can reach this address can use the explorer "
                    "(it has no login); the default 127.0.0.1 is reachable from this machine only", host)
    sock = bind(host, port)
    app = create_app(sessions, max_upload=int(max_upload_mb * 1e6), hosts=[host])
    if ready is not None:
        ready(url_of(sock), [s.name for s in sessions])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
