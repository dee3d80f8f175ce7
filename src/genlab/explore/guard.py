"""Who may talk to the explorer: requests for the address it listens on, from its own page.

An ASGI middleware around the whole app makes two checks before any route runs:

* ``Host`` must name the address the server listens on (127.0.0.1, localhost, [::1], the local
  address the connection came in on, or the ``--host`` given) with the port it listens on; anything
  else gets 400. A web page elsewhere that points its own DNS name at 127.0.0.1 (DNS rebinding)
  sends its own name as ``Host``, so it never reads the API.
* An API request (and any request that is not a GET) must come from the explorer's own page: the
  ``Origin`` header, else ``Sec-Fetch-Site``, else the ``Referer``, must name the page's own origin,
  or the request gets 403 before anything runs. Browsers send one of them with every cross-origin
  request, including the "simple" ones (a ``text/plain`` POST) that need no CORS preflight; clients
  that are not browsers (curl, scripts) send none and are served.

No CORS header is ever sent, so no other origin can read an answer either.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_FETCH_SITES = ("same-origin", "none")  # "none": the user typed the URL


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6][:port]`` -> (lower-case name, port or None); None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]") + 1
        if end == 0:
            return None
    else:
        end = value.find(":") if ":" in value else len(value)
    name, rest = value[:end], value[end:]
    if not name:
        return None
    if not rest:
        return name, None
    port = rest[1:]
    if rest[0] != ":" or not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return name, int(port)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL or an ``Origin`` value; None for ``null`` or anything unparsable."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = split_host(parts.netloc) if parts.scheme in ("http", "https") and "@" not in parts.netloc else None
    if host is None:
        return None
    return parts.scheme, host[0], host[1] or (443 if parts.scheme == "https" else 80)


class HostOriginGuard:
    """ASGI middleware: refuse other hosts (400) and other origins (403) with one JSON error line."""

    def __init__(self, app, hosts: Iterable[str] = ()):
        self.app = app
        self.names = set(LOCAL_NAMES) | {_bracketed(h.strip().lower()) for h in hosts if h}

    async def __call__(self, scope, receive, send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            status, message = refusal
            await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, message) for a request to refuse; None to serve it."""
        headers = Headers(scope=scope)
        host, server = headers.get("host"), scope.get("server")
        local, port = (_bracketed(server[0]), server[1]) if server else (None, None)
        got = split_host(host) if host else None
        if got is None or got[0] not in self.names | {local} or (port is not None and (got[1] or 80) != port):
            where = f" (open http://127.0.0.1:{port}/ or the --host address)" if port else ""
            return 400, f"refused: Host {(host or '')[:100]!r} is not an address this explorer listens on{where}"
        if scope["path"].startswith("/api/") or scope["method"] not in ("GET", "HEAD"):
            message = self.origin_refusal(headers, own=("http", got[0], got[1] or 80))
            if message is not None:
                return 403, message
        return None

    @staticmethod
    def origin_refusal(headers: Headers, own: tuple[str, str, int]) -> str | None:
        """Why a request is not from the page at ``own`` (Origin, else Sec-Fetch-Site, else Referer)."""
        origin = headers.get("origin")
        if origin is not None:
            if origin_of(origin) == own:
                return None
            return f"refused: a request from another web origin ({origin[:100]}) may not use this explorer"
        site = headers.get("sec-fetch-site")
        if site is not None:
            if site in SAFE_FETCH_SITES:
                return None
            return f"refused: a {site[:20]} request may not use this explorer (only its own page may)"
        referer = headers.get("referer")
        if referer is not None and origin_of(referer) != own:
            return "refused: a request from another web page may not use this explorer"
        return None
