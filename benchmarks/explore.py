"""How fast the explorer answers a slider move: round trips of ``/api/runs/<i>/move``, measured.

Trains a VAE, a DCGAN and an InfoGAN on mnist5k for a few steps each (the latency does not depend
on training; ``--runs`` takes existing run folders instead), starts ``genlab explore`` in its own
process on 127.0.0.1 (``--threads``, default 1: steady on a shared machine), and from this process,
over one keep-alive connection as a browser would use, sends ``--n`` slider moves per run: the
picked sample's code moved along one of the Move tab's directions, a new value each time. Each
round trip is timed from sending the request to having the whole JSON answer (the decoded image as
a PNG data URL) parsed. ``--warmup`` moves first (the directions are computed then) are not counted.
``--browser``: the same moves again from the page in headless Chromium (Debian's, via Playwright),
timed in JavaScript from ``fetch`` to the parsed answer.

    python benchmarks/explore.py --json benchmarks/results/explore.json | tee benchmarks/results/explore.txt
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MODELS = ("vae", "gan", "infogan")
TARGET_MS = 50.0


def train(model: str, runs: Path, steps: int) -> Path:
    folder = runs / model
    subprocess.run([sys.executable, "-m", "genlab", "-q", "train", model, "--data", "mnist5k", "--steps", str(steps),
                    "--runs", str(folder), "--no-final", "--set", "train.threads=1", "--set", "train.eval_metrics=",
                    "--set", "train.sample_every=100000"], check=True, stdout=subprocess.DEVNULL)
    (run,) = folder.iterdir()
    return run


def start_server(runs: list[Path], threads: int) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen([sys.executable, "-m", "genlab", "explore", *map(str, runs), "--port", "0",
                             "--threads", str(threads)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "genlab explore: ... at http://127.0.0.1:PORT/  (Ctrl-C stops)"
    url = next(w for w in line.split() if w.startswith("http://"))
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return proc, host, int(port)


def call(conn: http.client.HTTPConnection, path: str, body: dict | None = None) -> dict:
    if body is None:
        conn.request("GET", path)
    else:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {data}")
    return data


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def measure(conn, run: int, n: int, warmup: int) -> list[float]:
    z = call(conn, f"/api/runs/{run}/sample", {"seed": 0, "n": 16})["z"][0]
    k = len(call(conn, f"/api/runs/{run}/directions")["names"])
    times = []
    for i in range(warmup + n):
        value = -3 + 6 * ((i * 0.137) % 1)  # a slider dragged back and forth
        body = {"z": z, "offsets": {str(i % k): round(value, 2)}}
        t = time.perf_counter()
        out = call(conn, f"/api/runs/{run}/move", body)
        elapsed = (time.perf_counter() - t) * 1e3
        assert out["image"].startswith("data:image/png")
        if i >= warmup:
            times.append(elapsed)
    return times


BROWSER_LOOP = """async ([run, z, k, n, warmup]) => {
  const times = [];
  for (let i = 0; i < warmup + n; i++) {
    const value = Math.round((-3 + 6 * ((i * 0.137) % 1)) * 100) / 100;
    const t = performance.now();
    const res = await fetch(`/api/runs/${run}/move`, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({z, offsets: {[String(i % k)]: value}})});
    const out = await res.json();
    if (!out.image) throw new Error(JSON.stringify(out));
    if (i >= warmup) times.push(performance.now() - t);
  }
  return times;
}"""


def measure_browser(host: str, port: int, described: list, conn, n: int, warmup: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page()
        page.goto(f"http://{host}:{port}/")
        page.wait_for_selector("body[data-ready='1']")
        for i, run in enumerate(described):
            z = call(conn, f"/api/runs/{i}/sample", {"seed": 0, "n": 16})["z"][0]
            k = len(call(conn, f"/api/runs/{i}/directions")["names"])
            out[run["name"]] = page.evaluate(BROWSER_LOOP, [i, z, k, n, warmup])
        browser.close()
    return out


def summary(run: dict, times: list[float]) -> dict:
    return {"model": run["model"], "latent": run["latent"], "n": len(times), "median_ms": statistics.median(times),
            "p95_ms": percentile(times, 0.95), "max_ms": max(times), "mean_ms": statistics.fmean(times)}


def table(title: str, results: dict) -> None:
    print(title)
    print(f"{'run':<28} {'latent':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  < {TARGET_MS:g} ms")
    for name, r in results.items():
        verdict = "yes" if r["p95_ms"] < TARGET_MS else "NO"
        print(f"{name:<28} {r['latent']:>6} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['max_ms']:>8.2f}  {verdict}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", type=Path, default=None, help="existing run folders (default: train them)")
    p.add_argument("--steps", type=int, default=30, help="training steps per model when training")
    p.add_argument("--n", type=int, default=500, help="timed slider moves per run")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    p.add_argument("--browser", action="store_true", help="also time the moves from headless Chromium")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or [train(m, Path(tmp), args.steps) for m in MODELS]
        proc, host, port = start_server(runs, args.threads)
        try:
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do
            described = call(conn, "/api/runs")["runs"]
            results = {run["name"]: summary(run, measure(conn, i, args.n, args.warmup))
                       for i, run in enumerate(described)}
            browser = {}
            if args.browser:
                got = measure_browser(host, port, described, conn, args.n, args.warmup)
                browser = {run["name"]: summary(run, got[run["name"]]) for run in described}
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    head = (f"{args.n} per run, server threads {args.threads}, torch {torch.__version__}, "
            f"{platform.processor() or platform.machine()}")
    table(f"slider moves (POST /api/runs/<i>/move -> PNG data URL) from Python, {head}", results)
    if browser:
        table(f"\nthe same from the page in headless Chromium (fetch -> parsed JSON), {head}", browser)
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "n": args.n, "target_ms": TARGET_MS,
                                               "torch": torch.__version__, "runs": results, "browser": browser},
                                              indent=2))


if __name__ == "__main__":
    main()
