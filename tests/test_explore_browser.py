"""`genlab explore` in a real headless Chromium (Debian's package, driven by Playwright; no browser
download). One server and one browser page serve all the tests. Without Chromium or Playwright the
tests skip, except under CI (``CI`` set), where they fail: CI must run them."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from genlab.explore.app import create_app
from genlab.explore.server import Background
from genlab.explore.session import RunSession

CHROMIUM = os.environ.get("GENLAB_CHROMIUM", "/usr/bin/chromium")
SEEN: list[dict] = []  # every API request the explorer got: method, path, origin headers, answer status
SAMPLE_SEEDS: list[int] = []  # the seeds the first run's model sampled with
OPEN = threading.Event()  # cleared: the first run's decode waits until it is set again
OPEN.set()
SERVER = {}  # the explorer's work gate
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _need_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not Path(CHROMIUM).is_file():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def page(explore_runs, tmp_path_factory):
    _need_browser()
    from playwright.sync_api import sync_playwright

    sessions = [RunSession(explore_runs[name]) for name in ("vae", "gan")]
    sample, decode = sessions[0].sample, sessions[0].decode
    sessions[0].sample = lambda **kw: SAMPLE_SEEDS.append(kw["seed"]) or sample(**kw)
    sessions[0].decode = lambda *a, **kw: OPEN.wait(120) and decode(*a, **kw)
    app = create_app(sessions, max_upload=1_000_000)
    SERVER["gate"] = app.state.gate
    srv = Background(_recorded(app))
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS, viewport={"width": 1280, "height": 1000})
        pg = browser.pages[0] if browser.pages else browser.new_page()
        pg.set_default_timeout(20_000)
        pg.goto(srv.url)
        pg.wait_for_selector("body[data-ready='1']")
        yield pg
        browser.close()
    srv.stop()


def _recorded(app):
    """``app`` that notes each API request's origin headers and answer status in ``SEEN``."""
    async def recorder(scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await app(scope, receive, send)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        row = {"method": scope["method"], "path": scope["path"],
               **{k: headers.get(k) for k in ("origin", "sec-fetch-site", "content-type")}}
        SEEN.append(row)

        async def noting(message):
            if message["type"] == "http.response.start":
                row["status"] = message["status"]
            await send(message)
        await app(scope, receive, noting)
    return recorder


def pixels(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,"), src[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))), dtype=np.int16)


def tab(page, name: str) -> None:
    page.click(f"#tabs button[data-tab='{name}']")


def fresh_picks(page, *indices: int) -> list[str]:
    """Clear the picks, draw the sample grid, pick these samples; their image sources."""
    tab(page, "sample")
    page.click("#clear-picks")
    page.wait_for_function("document.querySelectorAll('#sample-grid img.sample').length === 16")
    cells = page.locator("#sample-grid img.sample")
    for i in indices:
        cells.nth(i).click()
    page.wait_for_function(f"document.querySelectorAll('#picks img').length === {len(indices)}")
    return [cells.nth(i).get_attribute("src") for i in indices]


@pytest.mark.slow
def test_the_page_loads_with_a_sample_grid(page):
    assert page.title() == "genlab explore"
    assert page.locator("#run-select option").count() == 2
    page.wait_for_function("document.querySelectorAll('#sample-grid img.sample').length === 16")
    assert page.locator("#error").is_hidden()


def test_moving_a_latent_slider_changes_the_image(page):
    (src,) = fresh_picks(page, 3)
    tab(page, "move")
    page.wait_for_function("document.querySelectorAll('.move-slider').length === 8")
    page.wait_for_function(f"document.getElementById('move-image').src === {src!r}")
    page.locator(".move-slider").first.fill("2.5")
    page.wait_for_function(f"document.getElementById('move-image').src !== {src!r}")
    moved = page.get_attribute("#move-image", "src")
    assert np.abs(pixels(moved) - pixels(src)).max() > 0
    page.locator(".move-slider").nth(1).fill("-2")  # the next move answers too
    page.wait_for_function(f"document.getElementById('move-image').src !== {moved!r}")


@pytest.mark.slow
def test_drawing_a_stroke_produces_a_reconstruction(page):
    tab(page, "draw")
    page.click("#draw-clear")
    box = page.locator("#draw-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 10, y + box["height"] * 0.6, steps=12)
    page.mouse.up()
    page.wait_for_function("document.getElementById('draw-output').src.startsWith('data:image/png')")
    assert page.inner_text("#draw-output-caption") == "reconstruction"
    assert pixels(page.get_attribute("#draw-input", "src")).max() > 100  # the stroke reached the model
    assert page.locator("#draw-neighbours img").count() == 4
    assert page.inner_text("#draw-code").startswith("z (12):")


def test_two_picks_show_a_strip_whose_ends_are_the_picks(page):
    a, b = fresh_picks(page, 0, 9)
    tab(page, "interp")
    page.wait_for_function("document.querySelectorAll('#interp-strip img.interp').length === 10")
    strip = page.locator("#interp-strip img.interp")
    assert np.abs(pixels(strip.first.get_attribute("src")) - pixels(a)).max() <= 1
    assert np.abs(pixels(strip.last.get_attribute("src")) - pixels(b)).max() <= 1
    page.locator("#scrub").fill("0")
    page.wait_for_function("document.getElementById('scrub-image').src.startsWith('data:image/png')")


def test_an_oversized_or_broken_upload_shows_the_error(page):
    tab(page, "draw")
    big = {"name": "huge.png", "mimeType": "image/png", "buffer": b"\x89PNG" + bytes(1_500_000)}
    page.set_input_files("#upload", files=[big])
    page.wait_for_selector("#draw-error:not([hidden])")
    page.wait_for_function("document.getElementById('draw-error').textContent.includes('limit')")
    page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}])
    page.wait_for_function("document.getElementById('draw-error').textContent.includes('not an image')")
    tab(page, "sample")  # the server is still up
    page.click("#new-seed")
    page.wait_for_function("document.querySelectorAll('#sample-grid img.sample').length === 16")


ELSEWHERE = """async (explorer) => {
  // what any page may send to any address without asking (no CORS preflight), answers unread
  await fetch(explorer + "api/runs/0/sample", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({seed: 4242, n: 4})});
  await fetch(explorer + "api/runs/0/map", {mode: "no-cors"});
  try {  // reading an answer needs CORS headers, which the explorer never sends
    return await (await fetch(explorer + "api/runs")).text();
  } catch (err) {
    return "unreadable";
  }
}"""


def test_a_page_from_another_origin_cannot_run_the_model(page):
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def home(request):
        return HTMLResponse("<!doctype html><title>elsewhere</title><p>another site")

    elsewhere = Background(Starlette(routes=[Route("/", home)]))  # another port: another origin
    other = page.context.new_page()
    try:
        other.goto(elsewhere.url)
        assert other.evaluate(ELSEWHERE, page.url) == "unreadable"
    finally:
        other.close()
        elsewhere.stop()
    assert 4242 not in SAMPLE_SEEDS  # the text/plain POST never reached the model
    # a no-cors GET carries no Origin, only Sec-Fetch-Site (same-site: the same address on another port)
    foreign = [r for r in SEEN if r["origin"] == elsewhere.url.rstrip("/") or r["sec-fetch-site"] == "same-site"]
    assert {r["path"] for r in foreign} == {"/api/runs/0/sample", "/api/runs/0/map", "/api/runs"}
    assert all(r["status"] == 403 for r in foreign), foreign


def test_the_pages_own_requests_carry_its_origin_and_are_served(page):
    own = page.url.rstrip("/")
    mine = [r for r in SEEN if r["origin"] == own or (r["origin"] is None and r["sec-fetch-site"] == "same-origin")]
    posts = [r for r in mine if r["method"] == "POST"]
    assert posts and all(r["origin"] == own for r in posts)  # Chromium names the page on every POST
    assert {"/api/runs", "/api/runs/0/sample", "/api/runs/0/move"} <= {r["path"] for r in mine}
    assert all(r["status"] != 403 for r in mine), [r for r in mine if r["status"] == 403]


def until(condition, what: str, limit: float = 120.0) -> None:
    """Wait for ``condition()`` (the limit only stops a hung test; no verdict depends on time)."""
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.mark.slow
def test_the_page_waits_and_retries_when_the_server_is_busy(page):
    gate, url = SERVER["gate"], page.url + "api/runs/0/decode"
    full = gate.workers + gate.waiting
    OPEN.clear()  # decodes wait: requests from elsewhere fill the workers and the queue
    fillers = [threading.Thread(target=httpx.post, args=(url,), kwargs={"json": {"z": [0.0] * 12}, "timeout": 120})
               for _ in range(full)]
    try:
        for t in fillers:
            t.start()
        until(lambda: gate.admitted == full, "the gate to fill")
        seen = len(SEEN)
        page.evaluate("""() => { window.busyAnswer = import("/static/core.js")
          .then((core) => core.api("decode", { body: { z: Array(12).fill(0) } }))
          .then((out) => out.images.length, (err) => "error: " + err.message); }""")
        until(lambda: any(r.get("status") == 503 and r["origin"] for r in SEEN[seen:]), "the page to be refused")
    finally:
        OPEN.set()
        for t in fillers:
            t.join(120)
    assert page.evaluate("() => window.busyAnswer") == 1  # it waited as asked, asked again and got its image
