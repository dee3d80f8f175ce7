"""Make the README's screenshots of ``genlab explore`` in headless Chromium (Debian's, via Playwright).

    python docs/explorer_screenshot.py runs/0001-vae-mnist5k [more runs] -o docs/explorer.png

Writes the Interpolate tab between two picked samples to ``-o``, and beside it ``*-draw.png`` (a drawn
digit, its reconstruction and nearest training images) and ``*-map.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.explore.app import create_app
from genlab.explore.server import Background
from genlab.explore.session import RunSession

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("-o", "--output", default="docs/explorer.png")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.output)
    srv = Background(create_app([RunSession(r) for r in args.runs]))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            page.goto(srv.url)
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("document.querySelectorAll('#sample-grid img.sample').length === 16")
            cells = page.locator("#sample-grid img.sample")
            cells.nth(1).click()
            cells.nth(6).click()
            page.click("#tabs button[data-tab='interp']")
            page.wait_for_function("document.querySelectorAll('#interp-strip img.interp').length === 10")
            page.locator("#scrub").fill("0.35")
            page.wait_for_timeout(300)
            page.screenshot(path=str(out))

            page.click("#tabs button[data-tab='draw']")
            box = page.locator("#draw-canvas").bounding_box()
            x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
            page.mouse.move(x0 + 0.3 * w, y0 + 0.25 * h)  # a "7": the bar, then the stem
            page.mouse.down()
            page.mouse.move(x0 + 0.7 * w, y0 + 0.25 * h, steps=10)
            page.mouse.move(x0 + 0.45 * w, y0 + 0.8 * h, steps=14)
            page.mouse.up()
            page.wait_for_function("document.getElementById('draw-output').src.startsWith('data:image/png')")
            page.wait_for_timeout(300)
            page.screenshot(path=str(out.with_name(out.stem + "-draw.png")))

            page.click("#tabs button[data-tab='map']")
            page.wait_for_function("document.getElementById('map-note').textContent.includes('points')")
            box = page.locator("#map-canvas").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
            page.wait_for_timeout(500)
            page.set_viewport_size({"width": 1100, "height": 720})
            page.screenshot(path=str(out.with_name(out.stem + "-map.png")))
            browser.close()
    finally:
        srv.stop()
    print(f"wrote {out} and its -draw, -map companions")


if __name__ == "__main__":
    main()
