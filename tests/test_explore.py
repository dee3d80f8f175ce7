"""`genlab explore`: every API endpoint over a real server, with the bad inputs the issue names."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from genlab.explore.app import create_app
from genlab.explore.server import Background
from genlab.explore.session import RunSession

ORDER = ("vae", "gan", "infogan", "cgan", "stackgan")


@pytest.fixture(scope="module")
def server(explore_runs):
    vector = np.zeros(12, dtype=np.float32)
    vector[0] = 3.0
    np.savez(explore_runs["vae"] / "bolder.npz", vector=vector)  # a saved attribute vector, picked up
    sessions = [RunSession(explore_runs[name], project_steps=10, project_starts=2) for name in ORDER]
    srv = Background(create_app(sessions, max_upload=100_000))
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        yield client
    srv.stop()


def pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), dtype=np.int16)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def error(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()


def codes(server, run: int, n: int = 3, **kw) -> list:
    return ok(server.post(f"/api/runs/{run}/sample", json={"seed": 0, "n": n, **kw}))["z"]


@pytest.mark.slow
def test_page_and_static_files_only_from_the_table(server):
    page = server.get("/")
    assert page.status_code == 200 and "genlab explore" in page.text and "text/html" in page.headers["content-type"]
    for name in ("app.js", "core.js", "panels.js", "style.css"):
        assert server.get(f"/static/{name}").status_code == 200
    for bad in ("/static/session.py", "/static/..%2Fsession.py", "/static/%2e%2e%2f%2e%2e%2fconfig.json",
                "/static/../../../etc/passwd", "/etc/passwd", "/api/runs/5/record", "/api/runs/x/record"):
        assert server.get(bad).status_code == 404, bad


def test_runs_describe_what_each_model_declares(server):
    runs = {r["model"]: r for r in ok(server.get("/api/runs"))["runs"]}
    assert [r for r in runs] == list(ORDER)
    assert runs["vae"]["encoder"] and runs["vae"]["latent"] == 12 and not runs["gan"]["encoder"]
    assert runs["cgan"]["classes"] == 10 and runs["cgan"]["class_names"][3] == "3"
    assert runs["infogan"]["codes"] == {"noise": 4, "categories": 10, "cat_start": 4, "cont_start": 14, "cont": 2}
    assert runs["stackgan"]["captions"] and not runs["stackgan"]["decode"] and runs["stackgan"]["caption_words"]
    assert all(r["shape"] == [1, 8, 8] for r in runs.values())


def test_sample_is_seeded_and_takes_labels_codes_and_captions(server):
    a = ok(server.post("/api/runs/0/sample", json={"seed": 5, "n": 4}))
    b = ok(server.post("/api/runs/0/sample", json={"seed": 5, "n": 4}))
    assert a == b and len(a["images"]) == 4 and len(a["z"][0]) == 12 and a["y"] is None
    assert ok(server.post("/api/runs/0/sample", json={"seed": 6, "n": 4}))["z"] != a["z"]
    cond = ok(server.post("/api/runs/3/sample", json={"seed": 0, "n": 3, "label": 7}))
    assert cond["y"] == [7, 7, 7]
    info = ok(server.post("/api/runs/2/sample", json={"seed": 0, "n": 2, "category": 3, "cont": [0.5, -1.0]}))
    z = torch.tensor(info["z"])
    assert z[:, 4:14].argmax(1).tolist() == [3, 3] and torch.allclose(z[:, 14:], torch.tensor([0.5, -1.0]))
    cap = ok(server.post("/api/runs/4/sample", json={"seed": 0, "n": 2, "caption": "a seven"}))
    assert len(cap["images"]) == 2 and cap["z"] is None
    error(server.post("/api/runs/4/sample", json={"caption": "a purple elephant"}), 400, "")
    error(server.post("/api/runs/0/sample", json={"caption": "a seven"}), 400, "takes no caption")
    error(server.post("/api/runs/3/sample", json={"label": 10}), 400, "labels must be")
    error(server.post("/api/runs/2/sample", json={"category": 10}), 400, "category must be")
    error(server.post("/api/runs/0/sample", json={"n": 65}), 400, "n must be an integer")
    error(server.post("/api/runs/0/sample", json={"seed": "x"}), 400, "seed must be")


def test_decode_checks_the_code(server):
    z = codes(server, 0)
    assert len(ok(server.post("/api/runs/0/decode", json={"z": z}))["images"]) == 3
    error(server.post("/api/runs/0/decode", json={"z": z[0][:5]}), 400, "12 numbers")
    error(server.post("/api/runs/0/decode", json={"z": ["a"] * 12}), 400, "finite numbers")
    error(server.post("/api/runs/0/decode", json={"z": [1e9] * 12}), 400, "finite numbers")
    error(server.post("/api/runs/0/decode", content=b"{not json", headers={"content-type": "application/json"}),
          400, "not valid JSON")
    error(server.post("/api/runs/0/decode", json=[1, 2]), 400, "JSON object")
    error(server.post("/api/runs/0/decode", json={"z": [[0.0] * 12] * 9000}), 413, "limit")
    error(server.post("/api/runs/4/decode", json={"z": [0.0] * 4}), 400, "no decode(z)")
    error(server.post("/api/runs/3/decode", json={"z": [0.0] * 4, "y": 11}), 400, "labels must be")


def test_move_along_directions_and_attributes(server):
    z = codes(server, 0)[0]
    base = pixels(ok(server.post("/api/runs/0/decode", json={"z": z}))["images"][0])
    dirs = ok(server.get("/api/runs/0/directions"))
    assert dirs["kind"] == "pca" and len(dirs["names"]) == 8  # latent 12 > 8 with an encoder: PCA
    assert ok(server.get("/api/runs/1/directions"))["kind"] == "dims"
    same = pixels(ok(server.post("/api/runs/0/move", json={"z": z, "offsets": {"0": 0.0}}))["image"])
    assert np.abs(same - base).max() <= 1
    moved = pixels(ok(server.post("/api/runs/0/move", json={"z": z, "offsets": {"0": 3.0, "2": -2.0}}))["image"])
    assert np.abs(moved - base).max() > 0
    names = ok(server.get("/api/runs/0/attributes"))["names"]
    assert {"thickness", "slant", "bolder"} <= set(names)
    assert {"thickness", "slant"} <= set(ok(server.get("/api/runs/1/attributes"))["names"])
    bolder = pixels(ok(server.post("/api/runs/0/move", json={"z": z, "attributes": {"bolder": 1.0}}))["image"])
    assert np.abs(bolder - base).max() > 0
    error(server.post("/api/runs/0/move", json={"z": z, "offsets": {"8": 1.0}}), 400, "direction 8")
    error(server.post("/api/runs/0/move", json={"z": z, "attributes": {"nope": 1.0}}), 400, "no attribute vector")
    error(server.post("/api/runs/0/move", json={"z": z, "attributes": {"slant": "x"}}), 400, "finite number")


def test_interpolate_ends_are_the_picks_and_scrub(server):
    for run in (0, 1, 2):
        a, b = codes(server, run, 2)
        ends = ok(server.post(f"/api/runs/{run}/decode", json={"z": [a, b]}))["images"]
        for slerp in (False, True):
            out = ok(server.post(f"/api/runs/{run}/interpolate", json={"a": a, "b": b, "steps": 7, "slerp": slerp}))
            assert len(out["images"]) == 7
            assert np.abs(pixels(out["images"][0]) - pixels(ends[0])).max() <= 1
            assert np.abs(pixels(out["images"][-1]) - pixels(ends[1])).max() <= 1
        mid = ok(server.post(f"/api/runs/{run}/interpolate", json={"a": a, "b": b, "t": 0.0}))
        assert len(mid["images"]) == 1 and np.abs(pixels(mid["images"][0]) - pixels(ends[0])).max() <= 1
    error(server.post("/api/runs/0/interpolate", json={"a": a, "b": b, "steps": 33}), 400, "steps")


def test_arithmetic_a_minus_a_plus_c_is_c(server):
    a, _, c = codes(server, 0)
    expect = pixels(ok(server.post("/api/runs/0/decode", json={"z": c}))["images"][0])
    got = pixels(ok(server.post("/api/runs/0/arithmetic", json={"a": a, "b": a, "c": c}))["image"])
    assert np.abs(got - expect).max() <= 1
    error(server.post("/api/runs/0/arithmetic", json={"a": a, "b": a}), 400, "c must be")


def digit(size: int = 64) -> np.ndarray:
    img = np.zeros((size, size), np.uint8)
    img[size // 4: 3 * size // 4, size // 2 - 3: size // 2 + 3] = 255  # a "1"
    return img


def test_image_upload_encodes_or_projects(server):
    enc = ok(server.post("/api/runs/0/image?centre=1", content=png(digit())))
    assert enc["how"] == "reconstruction" and len(enc["z"]) == 12 and len(enc["neighbours"]) == 4
    assert pixels(enc["input"]).shape == (8, 8) and pixels(enc["input"]).max() > 100
    proj = ok(server.post("/api/runs/1/image", content=png(digit())))
    assert proj["how"] == "projection" and len(proj["z"]) == 6 and proj["neighbours"] is None
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 8:12] = 255  # transparent ground, opaque white ink
    assert ok(server.post("/api/runs/0/image", content=png(rgba)))["how"] == "reconstruction"


def test_bad_uploads_get_clear_errors_and_the_server_stays_up(server):
    error(server.post("/api/runs/0/image", content=b"%PDF-1.4 not an image"), 400, "not an image")
    error(server.post("/api/runs/0/image", content=b""), 400, "empty")
    error(server.post("/api/runs/0/image", content=png(np.zeros((5000, 8), np.uint8))), 400, "at most 4096")
    error(server.post("/api/runs/0/image", content=png(digit())[:60]), 400, "")  # a cut-off PNG
    big = np.random.default_rng(0).integers(0, 255, (400, 400), dtype=np.uint8)  # ~160 kB of noise
    error(server.post("/api/runs/0/image", content=png(big)), 413, "limit")
    error(server.post("/api/runs/4/image", content=png(digit())), 400, "no decode(z)")
    assert server.get("/api/runs").status_code == 200


def test_map_points_hover_and_click(server):
    m = ok(server.get("/api/runs/0/map"))
    assert len(m["xy"]) == len(m["y"]) == 179 and m["axes"] == "PCA" and "held-out" in m["source"]
    assert pixels(ok(server.get("/api/runs/0/map/5"))["image"]).shape == (8, 8)
    assert server.get("/api/runs/0/map/179").status_code == 404
    assert len(ok(server.post("/api/runs/0/map/decode", json={"u": 0.5, "v": -0.5}))["image"]) > 30
    g = ok(server.get("/api/runs/3/map"))  # a conditional generator: prior samples coloured by their class
    assert g["source"] == "prior samples" and g["y"][:3] == [0, 1, 2]
    error(server.post("/api/runs/0/map/decode", json={"u": "left"}), 400, "u must be")


def test_record_has_curves_and_config(server, explore_runs):
    rec = ok(server.get("/api/runs/2/record"))
    assert rec["config"]["model"] == "infogan" and isinstance(rec["curves"], dict)
    for series in rec["curves"].values():
        assert len(series["step"]) == len(series["value"]) <= 400


@pytest.mark.slow
def test_slow_work_does_not_block_other_requests(explore_runs):
    """While one connection projects an image (seconds of work), slider moves from another keep being answered:
    several of them complete during it, each in a small part of its time (a ratio, so load does not matter)."""
    session = RunSession(explore_runs["gan"], project_steps=300, project_starts=8)  # seconds of projection
    srv = Background(create_app([session]))
    try:
        with httpx.Client(base_url=srv.url, timeout=120) as client, httpx.Client(base_url=srv.url) as other:
            z = codes(client, 0, 1)[0]
            slow = threading.Thread(target=client.post, args=("/api/runs/0/image",), kwargs={"content": png(digit())})
            began = time.perf_counter()
            slow.start()
            waits = []
            while slow.is_alive():  # slider moves from another connection meanwhile
                t = time.perf_counter()
                ok(other.post("/api/runs/0/decode", json={"z": z}))
                if slow.is_alive():
                    waits.append(time.perf_counter() - t)
            slow.join()
            slow_took = time.perf_counter() - began
        assert len(waits) >= 3 and max(waits) < slow_took / 3, (waits, slow_took)
    finally:
        srv.stop()
