"""`genlab explore` under concurrent load: the server process's peak RSS, wave by wave.

Trains a VAE on mnist5k for a few steps (``--runs`` takes an existing run folder instead), starts
``genlab explore`` in its own process on 127.0.0.1, and sends ``--waves`` waves of concurrent
requests from this process, each wave ``--uploads`` uploads of a ``--side``² PNG (a white stroke on
black, so it stays under the upload limit) to ``/api/runs/0/image`` and ``--samples`` ``sample n=64``
requests, all at once, each on its own connection. A request refused with 503 is sent again after
its ``Retry-After`` (up to ``--attempts`` times), so every wave does the same work whether the
server queues or refuses. The server's resident memory is read from ``/proc/PID/status`` every
10 ms (``VmRSS``; ``VmHWM`` at the end), its CPU time from ``/proc/PID/stat`` (the wave's work,
whatever else the machine runs); past ``--rss-cap`` GB the server is killed, to protect a shared
machine, and the row says so.

    python benchmarks/explore_load.py --json benchmarks/results/explore_load.json \
        | tee benchmarks/results/explore_load.txt

``explore_load_before*.txt`` in ``benchmarks/results`` are the same load on the explorer before it
had a work gate and reduced uploads as it decoded them (commit dbf7c55; ``_rgb``: ``--mode RGB``).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from explore import start_server, train  # noqa: E402  (the sibling benchmark's helpers)


def stroke_png(side: int, mode: str) -> bytes:
    """A ``side``² PNG: one white vertical stroke on black (compresses to tens of kB)."""
    a = np.zeros((side, side, len(mode)), np.uint8)
    a[side // 4: 3 * side // 4, side * 7 // 16: side * 9 // 16] = 255
    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if mode == "L" else a).save(buf, format="PNG")
    return buf.getvalue()


def status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (a wave's work, whatever else the machine runs)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssWatch:
    """Samples a process's VmRSS every 10 ms in a thread; kills it past ``cap_kb``."""

    def __init__(self, proc, cap_kb: int):
        self.proc, self.cap_kb = proc, cap_kb
        self.peak_kb, self.killed = 0, False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            rss = status_kb(self.proc.pid, "VmRSS")
            if rss is None:
                return
            self.peak_kb = max(self.peak_kb, rss)
            if rss > self.cap_kb and not self.killed:
                self.killed = True
                self.proc.kill()

    def take_peak(self) -> int:
        peak, self.peak_kb = self.peak_kb, 0
        return peak


def request(host: str, port: int, method: str, path: str, body: bytes, content_type: str,
            attempts: int) -> tuple[int, int]:
    """(final status, number of 503 answers before it); status 0 when the connection failed."""
    refused = 0
    for _ in range(attempts):
        conn = http.client.HTTPConnection(host, port, timeout=900)
        try:
            conn.request(method, path, body, {"Content-Type": content_type})
            response = conn.getresponse()
            response.read()
            status, retry = response.status, response.getheader("Retry-After")
        except OSError:
            return 0, refused
        finally:
            conn.close()
        if status != 503:
            return status, refused
        refused += 1
        time.sleep(float(retry or 1))
    return 503, refused


def wave(host: str, port: int, png: bytes, uploads: int, samples: int, n: int, attempts: int, seed: int) -> dict:
    jobs = [("POST", "/api/runs/0/image", png, "image/png")] * uploads
    jobs += [("POST", "/api/runs/0/sample", json.dumps({"seed": seed + i, "n": n}).encode(), "application/json")
             for i in range(samples)]
    t = time.perf_counter()
    with ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(lambda j: request(host, port, *j, attempts), jobs))
    return {"seconds": time.perf_counter() - t, "status": dict(Counter(s for s, _ in got)),
            "answers_503": sum(r for _, r in got)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=None, help="an existing image run folder (default: train a VAE)")
    p.add_argument("--steps", type=int, default=30, help="training steps when training")
    p.add_argument("--waves", type=int, default=3)
    p.add_argument("--uploads", type=int, default=100, help="uploads per wave")
    p.add_argument("--samples", type=int, default=100, help="sample requests per wave")
    p.add_argument("--n", type=int, default=64, help="images per sample request")
    p.add_argument("--side", type=int, default=4096, help="side of the uploaded PNG")
    p.add_argument("--mode", choices=("L", "RGB", "RGBA"), default="RGBA",
                   help="the uploaded PNG's mode (RGBA, as a canvas exports a drawing: the costliest to decode)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the server (2: torch's default here)")
    p.add_argument("--attempts", type=int, default=600, help="tries per request when answered 503")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after a wave before reading the RSS left")
    p.add_argument("--rss-cap", type=float, default=16.0, help="GB of server RSS at which the server is killed")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    png = stroke_png(args.side, args.mode)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = args.runs or train("vae", Path(tmp), args.steps)
        proc, host, port = start_server([run], args.threads)
        watch = RssWatch(proc, int(args.rss_cap * 1024**2))
        try:
            time.sleep(0.5)
            idle_kb = status_kb(proc.pid, "VmRSS")
            watch.take_peak()
            for i in range(args.waves):
                cpu = cpu_seconds(proc.pid)
                got = wave(host, port, png, args.uploads, args.samples, args.n, args.attempts, seed=1000 * i)
                peak = watch.take_peak()
                got["server_cpu_s"] = cpu_seconds(proc.pid) - cpu
                time.sleep(args.settle)
                rows.append({"wave": i + 1, **got, "peak_rss_mb": peak / 1024,
                             "rss_after_mb": (status_kb(proc.pid, "VmRSS") or 0) / 1024, "killed": watch.killed})
                if watch.killed:
                    break
            hwm_kb = status_kb(proc.pid, "VmHWM")
        finally:
            watch.stop.set()
            proc.terminate()
            proc.wait(timeout=30)

    print(f"genlab explore under load: {args.waves} waves of {args.uploads} uploads of a {args.side}x{args.side} "
          f"{args.mode} PNG ({len(png) / 1e3:.0f} kB) + {args.samples} sample n={args.n}, all concurrent; "
          f"server threads {args.threads}, {platform.processor() or platform.machine()}")
    print(f"server RSS idle: {idle_kb / 1024:.0f} MB")
    print(f"{'wave':>4} {'seconds':>8} {'server CPU s':>12} {'peak RSS MB':>12} {'RSS after MB':>13} "
          f"{'503 answers':>12}  final statuses")
    for r in rows:
        note = "  (killed at the RSS cap)" if r["killed"] else ""
        print(f"{r['wave']:>4} {r['seconds']:>8.1f} {r['server_cpu_s']:>12.1f} {r['peak_rss_mb']:>12.0f} "
              f"{r['rss_after_mb']:>13.0f} {r['answers_503']:>12}  {r['status']}{note}")
    if hwm_kb:
        print(f"server VmHWM (peak RSS over its life): {hwm_kb / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                               "png_bytes": len(png), "idle_rss_mb": idle_kb / 1024,
                                               "vm_hwm_mb": None if hwm_kb is None else hwm_kb / 1024,
                                               "waves": rows}, indent=2))


if __name__ == "__main__":
    main()
