"""`genlab explore` against hostile clients: other hosts and origins, hostile JSON, and more work
than it can take at once (a bounded gate answers 503) or an upload bigger than it needs."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from genlab.explore.app import MAX_DEPTH, create_app, nesting_depth
from genlab.explore.server import Background
from genlab.explore.session import RunSession

JSON_POSTS = ("sample", "decode", "move", "interpolate", "arithmetic", "map/decode")


class Counted:
    """Counts calls of a RunSession method; ``block`` makes each call wait for ``release``."""

    def __init__(self, session: RunSession, name: str, block: bool = False):
        self.fn, self.calls, self.block = getattr(session, name), 0, block
        self.entered, self.release = threading.Event(), threading.Event()
        setattr(session, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.entered.set()
        if self.block:
            assert self.release.wait(60)
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="module")
def explorer(explore_runs):
    sessions = [RunSession(explore_runs[name], project_steps=5, project_starts=1) for name in ("vae", "gan")]
    counted = {name: Counted(sessions[0], name) for name in ("sample", "decode", "map_data", "understand")}
    srv = Background(create_app(sessions, max_upload=100_000, hosts=["explorer.example"]))
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        yield client, srv, counted
    srv.stop()


def png(array: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=save.pop("format", "PNG"), **save)
    return buf.getvalue()


def refused(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert words in message and "\n" not in message, message
    assert not any(k.lower().startswith("access-control-") for k in response.headers), response.headers


# --- other hosts (DNS rebinding) -------------------------------------------------------------------
def test_a_host_that_is_not_the_bound_address_is_refused(explorer):
    client, srv, _ = explorer
    port = urlsplit(srv.url).port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", f"localhost.:{port}",
                 f"127.0.0.1.evil.example:{port}", f"[::2]:{port}", f"localhost:{port}x", ""):
        for path in ("/api/runs", "/"):
            r = client.get(path, headers={"Host": host})
            refused(r, 400, "Host")
            assert "runs" not in r.json()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}",
                 f"explorer.example:{port}"):  # the loopback names, and the --host given
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host


def test_a_request_without_host_is_refused(explorer):
    _, srv, _ = explorer
    with socket.create_connection((urlsplit(srv.url).hostname, urlsplit(srv.url).port), timeout=30) as sock:
        sock.sendall(b"GET /api/runs HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"runs"' not in answer


# --- other origins ---------------------------------------------------------------------------------
def test_a_cross_origin_post_is_refused_and_runs_nothing(explorer):
    client, srv, counted = explorer
    before = {name: c.calls for name, c in counted.items()}
    body = json.dumps({"seed": 0, "n": 4})
    evil = [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": srv.url.rstrip("/") + "0"},
            {"Origin": "https://" + srv.url.removeprefix("http://").rstrip("/")},
            {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
            {"Referer": "http://evil.example/page.html"}]
    for headers in evil:
        for content_type in ("text/plain", "application/json"):  # text/plain: a "simple" request, no preflight
            refused(client.post("/api/runs/0/sample", content=body,
                                headers={**headers, "Content-Type": content_type}), 403, "refused")
        refused(client.post("/api/runs/0/image", content=png(np.zeros((8, 8), np.uint8)), headers=headers),
                403, "refused")
        refused(client.get("/api/runs/0/map", headers=headers), 403, "refused")  # GETs that run the model too
        refused(client.options("/api/runs/0/sample", headers={**headers, "Access-Control-Request-Method": "POST"}),
                403, "refused")
    assert {name: c.calls for name, c in counted.items()} == before


def test_the_pages_own_requests_are_served(explorer):
    client, srv, counted = explorer
    calls = counted["sample"].calls
    own = srv.url.rstrip("/")
    served = ({"Origin": own}, {"Origin": own, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "same-origin"},
              {"Sec-Fetch-Site": "none"}, {"Referer": own + "/"},
              {})  # no header at all: a client that is not a browser (curl, a script)
    for headers in served:
        r = client.post("/api/runs/0/sample", json={"seed": 0, "n": 2}, headers=headers)
        assert r.status_code == 200, (headers, r.text)
        assert not any(k.lower().startswith("access-control-") for k in r.headers)
    assert counted["sample"].calls == calls + len(served)
    nav = client.get("/", headers={"Sec-Fetch-Site": "cross-site"})  # a link from elsewhere opens the page
    assert nav.status_code == 200 and "genlab explore" in nav.text


def test_a_json_endpoint_takes_only_json(explorer):
    client, _, counted = explorer
    calls = counted["sample"].calls
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        refused(client.post("/api/runs/0/sample", content=b'{"n": 2}', headers=headers), 415, "application/json")
    assert counted["sample"].calls == calls
    assert client.post("/api/runs/0/sample", content=b'{"n": 2}',
                       headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 200


# --- hostile JSON ----------------------------------------------------------------------------------
def test_nesting_depth_counts_only_brackets_outside_strings():
    assert nesting_depth(b"") == 0 and nesting_depth(b'{"z": [[1, 2], [3, 4]]}') == 3
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": [1]}') == 2
    assert nesting_depth(rb'{"a": "\"[[[[", "b": "\\", "c": [[1]]}') == 3  # an escaped quote, then an escaped \
    assert nesting_depth(rb'["\\\"[[["]') == 1
    assert nesting_depth(b"[" * 100_000) == 100_000


DEEP = b"[" * 100_000
HOSTILE = [
    DEEP, DEEP + b"]" * 100_000, b'{"z": ' + DEEP, b'{"a": ' * 50_000, b'{"z": ' + b"[" * (MAX_DEPTH + 1) + b"1",
    b'{"z": [[1, 2, 3], [4]]}', b'{"a": [[1, 2], [3]], "b": [1, 2], "c": [1, 2]}',
    b'{"z": [1e999], "a": [1e999], "b": [1e999], "c": [1e999], "u": 1e999, "v": 0}',
    b'{"z": [NaN], "a": [Infinity], "b": [-Infinity], "c": [NaN], "u": NaN, "v": NaN, "n": NaN}',
    b'{"z": [' + b"9" * 4000 + b'], "a": [' + b"9" * 4000 + b'], "u": ' + b"9" * 4000 + b', "seed": '
    + b"9" * 4000 + b"}",
    b'{"z": [' + b"9" * 5000 + b"]}",  # past Python's int-string limit
    b'{"y": ' + b"9" * 40 + b', "label": ' + b"9" * 40 + b', "z": [0], "a": [0], "b": [0], "c": [0], "u": 0, "v": 0}',
    b'{"y": [-1, 10000000000000000000000], "label": [-5], "u": 0, "v": 0}',
    b'{"offsets": {"\xc2\xb2": 1}, "z": [0]}', b'{"offsets": {"' + b"1" * 5000 + b'": 1}, "z": [0]}',
    b'{"offsets": {"0": "x"}, "attributes": [1], "z": [0]}', b'{"attributes": {"x": 1e999}, "z": [0]}',
    b'{"z": [[]], "a": [], "b": [[]], "c": {}}', b'{"z": [[[0]]], "a": [[[0]]]}', b'{"z": "abc", "a": 1, "b": null}',
    b'{"cont": [1e999], "category": -1, "caption": 5}', b'{"cont": ' + b"[0]" * 3 + b"}", b'{"steps": 1e9, "t": "x"}',
    b'{"n": 0}', b'{"n": true}', b'{"seed": -1}', b'"a string"', b"null", b"[]", b"1", b"\xff\xfe", b'{"z": [0]',
    b'{"z": [0.0, 1.0, 2.0], "a": [0, 0, 0], "b": [0, 0, 0], "c": [0, 0, 0]}',  # the wrong latent size
]


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", JSON_POSTS)
def test_hostile_json_gets_400_with_a_message_never_500(explorer, endpoint):
    """Each body is served (some are valid for some endpoints: ``sample`` ignores ``z``) or refused
    with a 4xx and one line; never a 500."""
    client, _, _ = explorer
    for body in HOSTILE:
        r = client.post(f"/api/runs/0/{endpoint}", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200 or 400 <= r.status_code < 500, (body[:80], r.status_code, r.text[:300])
        if r.status_code != 200:
            message = r.json()["error"]
            assert message and "\n" not in message, message
    r = client.post(f"/api/runs/0/{endpoint}", content=DEEP, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "deeper than" in r.json()["error"]
    assert client.get("/api/runs").status_code == 200  # still serving


def test_a_ragged_code_is_refused_with_a_message(explorer):
    client, _, _ = explorer
    z = client.post("/api/runs/0/sample", json={"seed": 0, "n": 2}).json()["z"]
    ragged = [z[0], z[1][:5]]
    for endpoint, body in (("decode", {"z": ragged}), ("move", {"z": ragged}), ("interpolate", {"a": ragged, "b": z}),
                           ("arithmetic", {"a": z, "b": z, "c": ragged})):
        r = client.post(f"/api/runs/0/{endpoint}", json=body)
        assert r.status_code == 400 and "same length" in r.json()["error"], (endpoint, r.text)
    assert client.post("/api/runs/0/decode", json={"z": z}).status_code == 200


# --- bounded work ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_gate_answers_503_with_retry_after(explore_runs):
    session = RunSession(explore_runs["vae"])
    blocked = Counted(session, "decode", block=True)
    app = create_app([session], workers=1, waiting=1)
    srv = Background(app)
    try:
        with httpx.Client(base_url=srv.url, timeout=120) as client:
            z = client.post("/api/runs/0/sample", json={"seed": 0, "n": 1}).json()["z"]
            answers = []

            def send():  # from another thread, on its own connection
                answers.append(httpx.post(srv.url + "api/runs/0/decode", json={"z": z}, timeout=120))
            first = threading.Thread(target=send)
            first.start()
            assert blocked.entered.wait(60)  # the one worker is busy
            second = threading.Thread(target=send)
            second.start()
            while app.state.gate.admitted < 2:  # the second request waits in the queue
                assert second.is_alive()
                threading.Event().wait(0.01)
            for attempt in (lambda: client.post("/api/runs/0/decode", json={"z": z}),
                            lambda: client.post("/api/runs/0/image", content=png(np.zeros((64, 64), np.uint8))),
                            lambda: client.get("/api/runs/0/map")):
                r = attempt()
                refused(r, 503, "busy")
                assert int(r.headers["Retry-After"]) >= 1
            assert blocked.calls == 1  # nothing refused reached the model
            assert client.get("/api/runs").status_code == 200  # describing the runs needs no worker
            blocked.release.set()
            first.join(60)
            second.join(60)
            assert [a.status_code for a in answers] == [200, 200] and blocked.calls == 2
            assert client.post("/api/runs/0/decode", json={"z": z}).status_code == 200
            assert app.state.gate.admitted == 0
    finally:
        blocked.release.set()
        srv.stop()


MEASURE = r"""
import io, json, sys
import numpy as np
from PIL import Image
from genlab.explore.images import decode_upload

def peak_kb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])

out = {}
for name, file, centre in json.loads(sys.argv[1]):
    payload = open(file, "rb").read()
    open("/proc/self/clear_refs", "w").write("5")  # restart the peak at the current RSS
    base = peak_kb()
    x = decode_upload(payload, (1, 28, 28), centre=centre)
    out[name] = {"mb": (peak_kb() - base) / 1024, "shape": list(x.shape), "max": float(x.max())}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_an_upload_is_reduced_as_it_is_decoded(tmp_path):
    """A 4096² upload costs at most about one full-size decode: a JPEG decodes at 1/8 scale, a PNG is
    reduced before any conversion copies it (before: three to four full-size copies)."""
    side = 4096
    ink = np.zeros((side, side, 4), np.uint8)
    ink[side // 4: 3 * side // 4, side * 7 // 16: side * 9 // 16] = 255  # a white stroke, opaque on transparent
    files = {"rgba": ("png", ink, 4), "rgb": ("png", ink[..., :3], 3), "jpeg": ("jpeg", ink[..., :3], 3)}
    cases = []
    for name, (fmt, array, _) in files.items():
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(png(array, format=fmt.upper()))
        cases += [(name, str(path), False), (name + "-centre", str(path), True)]
    got = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(cases)], capture_output=True, text=True,
                         check=True)
    peaks = json.loads(got.stdout)
    full_mb = {name: side * side * bands / 2**20 for name, (_, _, bands) in files.items()}
    for name, peak in peaks.items():
        kind = name.split("-")[0]
        assert peak["shape"] == [1, 1, 28, 28] and peak["max"] > 0.5, (name, peak)  # the stroke came through
        limit = full_mb[kind] / 4 if kind == "jpeg" else 2.2 * full_mb[kind]  # one decode (+ one premultiplied)
        assert peak["mb"] <= limit, (name, peak, limit, peaks)


@pytest.mark.slow
def test_explore_command_prints_its_url_and_serves_the_page(explore_runs, tmp_path):
    """`genlab explore RUN --port 0`: one call of the server; the CLI prints the URL it listens on."""
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "genlab", "explore", str(explore_runs["vae"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("genlab explore: ") and "http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=60) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
