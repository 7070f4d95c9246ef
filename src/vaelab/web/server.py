"""``vaelab serve``: load the runs, bind the address (127.0.0.1 unless told otherwise) and run uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..run import load_run
from .app import LOCAL_HOSTS, create_app, host_name
from .explorer import Explorer


def load_explorers(paths: Sequence[str | Path]) -> list[Explorer]:
    """An Explorer per run folder, named by the folder (with its parent when two folders share a name)."""
    runs = [load_run(p) for p in paths]
    names = [r.path.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{r.path.parent.name}/{r.path.name}" for r in runs]
    return [Explorer(run, i, name) for i, (run, name) in enumerate(zip(runs, names, strict=True))]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or a ConfigError that says why not."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535; got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: not an address of this machine ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({err.strerror}): pick another --port (0: any free one)"
        ) from None
    sock.listen(128)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> frozenset[str] | None:
    """The Host names the explorer answers when it listens on ``host``: on a loopback address, that address, the
    local names and ``extra`` (e.g. the name a proxy forwards; no DNS rebinding); on any other address, every name
    (sharing it was asked for)."""
    if not is_loopback(host):
        return None
    return LOCAL_HOSTS | {f"[{host}]" if ":" in host else host.lower()} | {host_name(name) for name in extra}


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    paths: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 8765,
    log: Callable = print,
    extra_hosts: Sequence[str] = (),
) -> None:
    """Serve the explorer for these run folders until interrupted; on a loopback address it also answers
    requests for ``extra_hosts``."""
    import uvicorn

    explorers = load_explorers(paths)
    sock = bind(host, port)
    if not is_loopback(host):
        log(f"warning: listening on {host}: anyone who can reach this machine can use the explorer")
    log(f"vaelab explorer: {url(sock)}  ({', '.join(e.name for e in explorers)}; Ctrl+C stops)")
    app = create_app(explorers, allowed_hosts(host, extra_hosts))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


class BackgroundServer:
    """uvicorn serving the explorer over ``explorers`` from a thread, on a free port of 127.0.0.1 (tests, benches):
    ``with BackgroundServer(explorers) as url: ...``."""

    def __init__(self, explorers: list[Explorer], timeout: float = 30.0):
        import uvicorn

        self.socket = bind("127.0.0.1", 0)
        config = uvicorn.Config(create_app(explorers), log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.timeout = timeout

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the explorer's server did not start within {self.timeout} s")
            time.sleep(0.02)
        return url(self.socket).rstrip("/")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(self.timeout)
        self.socket.close()
