"""The explorer's web app: a static page and a JSON API over the runs named on the command line.

Runs are addressed by their position in that list (``/api/runs/0/...``), never by a path, and the
page's files come from a fixed table read at start-up, so no request reaches the file system.
Model work runs in worker threads, so the event loop (and the page) never waits for a decode; a
``WorkGate`` bounds how many jobs run and wait at once (more get 503 with Retry-After), and a
``HostOriginGuard`` serves only this machine's address and the explorer's own page.
Every error is JSON ``{"error": message}`` with a 4xx status (503 when busy, 500 for a bug), shown on the page.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from importlib import resources

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import GenlabError
from .gate import RETRY_AFTER, WAITING, WORKERS, Busy, WorkGate
from .guard import HostOriginGuard
from .images import BadImage, data_url, data_urls, decode_upload
from .session import RunSession

log = logging.getLogger("genlab")

STATIC = {"index.html": "text/html", "app.js": "text/javascript", "core.js": "text/javascript",
          "panels.js": "text/javascript",
          "style.css": "text/css"}
MAX_JSON = 256 * 1024  # bytes of a JSON request
MAX_DEPTH = 8  # nesting of arrays and objects in a JSON request (the API's deepest is 3: {"z": [[...]]})
MAX_BATCH = 64  # images per request
MAX_ABS = 1e3  # largest |value| in a code
MAX_LABEL = 10_000  # largest class label or category


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# --- request parsing ----------------------------------------------------------------------------
async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (by its header or while reading)."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"the upload is {int(declared) / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(f"the upload is larger than the limit of {limit / 1e6:.1f} MB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in ``raw``, found without parsing (linear time,
    no recursion): brackets between unescaped quotes are in strings and do not count. Up to the
    first syntax error this is what a parser sees, so a parser never goes deeper than this."""
    a = np.frombuffer(raw, np.uint8)  # (N,)
    if not a.size:
        return 0
    pos = np.arange(a.size)
    backslash = a == ord("\\")
    last_other = np.maximum.accumulate(np.where(backslash, -1, pos))  # last non-backslash at or before i
    run = np.zeros_like(pos)
    run[1:] = pos[:-1] - last_other[:-1]  # backslashes just before i
    quote = (a == ord('"')) & (run % 2 == 0)  # a quote after an odd run of backslashes is escaped
    outside = np.cumsum(quote) % 2 == 0  # brackets outside strings (quotes themselves do not matter)
    opens = ((a == ord("[")) | (a == ord("{"))) & outside
    closes = ((a == ord("]")) | (a == ord("}"))) & outside
    return int(np.cumsum(opens.astype(np.int64) - closes).max())


async def _json(request: Request) -> dict:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError("send the request body as JSON, with Content-Type: application/json", 415)
    raw = await _body(request, MAX_JSON)
    if nesting_depth(raw) > MAX_DEPTH:
        raise ApiError(f"the request body nests arrays or objects deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    return body


def _int(body: dict, key: str, default: int | None, lo: int, hi: int) -> int | None:
    v = body.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ApiError(f"{key} must be an integer in {lo}..{hi}")
    return v


def _number(x) -> bool:
    """A JSON number within ±MAX_ABS (compared before the float conversion: a 4000-digit int overflows it)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and -MAX_ABS <= x <= MAX_ABS and math.isfinite(x)


def _float(body: dict, key: str, default: float | None = None) -> float:
    v = body.get(key, default)
    if not _number(v):
        raise ApiError(f"{key} must be a finite number")
    return float(v)


def _code(body: dict, key: str) -> list:
    """A code (D numbers) or a batch of codes (all of one length), checked for type, size and finiteness."""
    v = body.get(key)
    rows = v if isinstance(v, list) and v and isinstance(v[0], list) else [v]
    if not isinstance(v, list) or len(rows) > MAX_BATCH or not all(
            isinstance(r, list) and r and all(_number(x) for x in r) for r in rows):
        raise ApiError(f"{key} must be a list of finite numbers (or at most {MAX_BATCH} such lists)")
    if len({len(r) for r in rows}) > 1:
        raise ApiError(f"the codes in {key} must all have the same length, got lengths "
                       f"{sorted({len(r) for r in rows})[:8]}")
    return v


def _label(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_LABEL


def _labels(body: dict, key: str = "y"):
    v = body.get(key)
    if v is None or _label(v) or (isinstance(v, list) and len(v) <= MAX_BATCH and all(_label(x) for x in v)):
        return v
    raise ApiError(f"{key} must be an integer in 0..{MAX_LABEL} or a list of at most {MAX_BATCH} of them")


def _offsets(body: dict) -> dict[int, float]:
    """The Move sliders' offsets: direction numbers ("0".."99") to numbers."""
    named = _named(body, "offsets")
    if not all(k.isascii() and k.isdigit() and len(k) <= 2 for k in named):
        raise ApiError("offsets must map direction numbers (0..99) to numbers")
    return {int(k): v for k, v in named.items()}


def _named(body: dict, key: str) -> dict:
    v = body.get(key) or {}
    if not isinstance(v, dict) or len(v) > 64:
        raise ApiError(f"{key} must be an object of names to numbers")
    return {k: _float(v, k) for k in v}


# --- the app ------------------------------------------------------------------------------------
def create_app(sessions: list[RunSession], *, max_upload: int = 2_000_000, hosts: Iterable[str] = (),
               workers: int = WORKERS, waiting: int = WAITING) -> Starlette:
    """The explorer over ``sessions``. ``hosts``: names besides 127.0.0.1 / localhost / [::1] that a
    request's Host may give (the ``--host`` bound); ``workers`` / ``waiting``: the ``WorkGate``."""
    static = {name: resources.files("genlab.explore").joinpath("static", name).read_bytes() for name in STATIC}
    gate = WorkGate(workers, waiting)

    def session(request: Request) -> RunSession:
        i = request.path_params["run"]
        if not 0 <= i < len(sessions):
            raise ApiError(f"no run {i}: this explorer shows runs 0..{len(sessions) - 1}", 404)
        return sessions[i]

    def endpoint(fn, gated: bool = True):
        """``fn``'s answer as JSON; a gated ``fn`` is admitted by the gate first (503 when it is full)."""
        async def handle(request: Request) -> Response:
            try:
                if not gated:
                    return JSONResponse(await fn(request))
                with gate.admit():
                    return JSONResponse(await fn(request))
            except Busy as err:
                return JSONResponse({"error": str(err)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER)})
            except ApiError as err:
                return JSONResponse({"error": str(err)}, status_code=err.status)
            except (GenlabError, BadImage) as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            except Exception as err:  # a bug: say so on the page, keep serving
                log.exception("explorer: %s failed", request.url.path)
                return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}"[:300]},
                                    status_code=500)
        return handle

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in static:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(static[name], media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def runs(request):
        return {"runs": [s.describe() for s in sessions], "max_upload": max_upload}

    # Each handler checks its request on the event loop, then runs the model and encodes the images
    # (PNG data URLs) in one worker job.
    async def sample(request):
        s, body = session(request), await _json(request)
        caption = body.get("caption")
        if caption is not None and (not isinstance(caption, str) or len(caption) > 200):
            raise ApiError("caption must be a string of at most 200 characters")
        cont = body.get("cont")
        if cont is not None:
            cont = [_float({"c": c}, "c") for c in (cont if isinstance(cont, list) else [None])][:16]
        kwargs = dict(seed=_int(body, "seed", 0, 0, 2**31 - 1), n=_int(body, "n", 16, 1, MAX_BATCH),
                      label=_labels(body, "label"), caption=caption or None,
                      category=_int(body, "category", None, 0, MAX_LABEL), cont=cont)

        def work():
            out = s.sample(**kwargs)
            return {"images": data_urls(out["x"]), "z": None if out["z"] is None else out["z"].tolist(),
                    "y": None if out["y"] is None else out["y"].tolist()}
        return await gate.run(work)

    async def decode(request):
        s, body = session(request), await _json(request)
        z, y = _code(body, "z"), _labels(body)
        return await gate.run(lambda: {"images": data_urls(s.decode(z, y))})

    async def move(request):
        s, body = session(request), await _json(request)
        z, offsets, strengths, y = _code(body, "z"), _offsets(body), _named(body, "attributes"), _labels(body)
        return await gate.run(lambda: {"image": data_url(s.move(z, offsets=offsets, strengths=strengths, y=y)[0])})

    async def interpolate(request):
        s, body = session(request), await _json(request)
        a, b, y = _code(body, "a"), _code(body, "b"), _labels(body)
        steps, spherical = _int(body, "steps", 10, 2, 32), bool(body.get("slerp"))
        t = None if body.get("t") is None else _float(body, "t")

        def work():
            out = s.interpolate(a, b, steps=steps, spherical=spherical, y=y, t=t)
            return {"images": data_urls(out["x"]), "z": out["z"].tolist()}
        return await gate.run(work)

    async def arithmetic(request):
        s, body = session(request), await _json(request)
        a, b, c, y = _code(body, "a"), _code(body, "b"), _code(body, "c"), _labels(body)
        return await gate.run(lambda: {"image": data_url(s.arithmetic(a, b, c, y)[0])})

    async def directions(request):
        d = await gate.run(session(request).directions)
        return {"kind": d["kind"], "names": d["names"]}

    async def attributes(request):
        return {"names": list(await gate.run(session(request).attributes))}

    async def image(request):
        s = session(request)
        payload = await _body(request, max_upload)
        centre = request.query_params.get("centre") == "1"
        return await gate.run(lambda: _encode_image(s, decode_upload(payload, s.shape, centre=centre)))

    async def map_points(request):
        s = session(request)
        m = await gate.run(s.map_data)
        return {"xy": m["xy"].tolist(), "y": None if m["y"] is None else m["y"].tolist(),
                "class_names": s.class_names, "source": "encoded held-out data" if s.encoder else "prior samples",
                "axes": "latent" if s.latent == 2 else "PCA"}

    async def map_item(request):
        s, k = session(request), request.path_params["k"]
        m = await gate.run(s.map_data)
        if not 0 <= k < len(m["x"]):
            raise ApiError(f"no map point {k}", 404)
        return {"image": data_url(m["x"][k])}

    async def map_decode(request):
        s, body = session(request), await _json(request)
        u, v, y = _float(body, "u"), _float(body, "v"), _labels(body)
        return await gate.run(lambda: {"image": data_url(s.map_point(u, v, y)[0])})

    async def record(request):
        return await gate.run(session(request).record)

    api = [("/runs/{run:int}/sample", sample, "POST"), ("/runs/{run:int}/decode", decode, "POST"),
           ("/runs/{run:int}/move", move, "POST"), ("/runs/{run:int}/interpolate", interpolate, "POST"),
           ("/runs/{run:int}/arithmetic", arithmetic, "POST"), ("/runs/{run:int}/directions", directions, "GET"),
           ("/runs/{run:int}/attributes", attributes, "GET"), ("/runs/{run:int}/image", image, "POST"),
           ("/runs/{run:int}/map", map_points, "GET"), ("/runs/{run:int}/map/{k:int}", map_item, "GET"),
           ("/runs/{run:int}/map/decode", map_decode, "POST"), ("/runs/{run:int}/record", record, "GET")]

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [Route("/", page), Route("/static/{name}", page), Route("/favicon.ico", no_icon)]
    routes += [Route("/api" + path, endpoint(fn), methods=[method]) for path, fn, method in api]
    routes += [Route("/api/runs", endpoint(runs, gated=False), methods=["GET"])]
    app = Starlette(routes=routes, middleware=[Middleware(HostOriginGuard, hosts=hosts)])
    app.state.gate = gate
    return app


def _encode_image(s: RunSession, x) -> dict:
    out = s.understand(x)
    return {"input": data_url(x[0]), "z": out["z"][0].tolist(), "image": data_url(out["x"][0]), "how": out["how"],
            "neighbours": data_urls(out["neighbours"]) if "neighbours" in out else None}
