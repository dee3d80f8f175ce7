"""Architecture figures of genlab: import cycles, what an import loads, capability probes, model names
outside ``models/``, and the latency of ``genlab --help`` / ``genlab list`` (docs/architecture.md).

    PYTHONPATH=src python benchmarks/architecture.py src | tee benchmarks/results/architecture.txt

Cycles are strongly connected groups in grimp's import graph (imports inside functions count: a
lazy import is still a dependency), between modules and between genlab's top-level packages.
Wall times are medians of 5 runs; CPU time (user+sys of the child, ``/usr/bin/time``) says the
same on a busy machine.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grimp

MODEL_NAMES = ("codec", "dcign", "m2", "infogan", "stackgan", "gan", "wgan", "wgan-gp", "cgan", "cvae", "vae",
               "gmvae", "ae")
# a model attribute probed by name: hasattr/getattr on the model (by any of the names it goes by) or its class
PROBE = re.compile(r"\b(hasattr|getattr)\((model|m|self\.model|cls|model_cls|MODELS\.get\([^)]*\)), ")
NAME_LITERAL = re.compile("[\"'](" + "|".join(re.escape(n) for n in MODEL_NAMES) + ")[\"']")


def strongly_connected(nodes, edges) -> list[list[str]]:
    """Tarjan's algorithm: the groups of more than one node that reach each other."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = iter(range(10**9))
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = next(counter)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on.discard(w)
                group.append(w)
            on.discard(v)
            group.append(v)
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def source_lines(src: Path, skip_models: bool):
    for path in sorted((src / "genlab").rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if skip_models and (rel.startswith("genlab/models/") or rel in ("genlab/registry.py", "genlab/catalog.py")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{rel}:{number}", line


def child_cpu(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, user+sys CPU seconds) of one run of ``cmd``."""
    start = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%U+%S", *cmd], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    user, system = r.stderr.strip().splitlines()[-1].split("+")
    return wall, float(user) + float(system)


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src").resolve()
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    py = sys.executable
    graph = grimp.build_graph("genlab", cache_dir=None)
    cycles = strongly_connected(graph.modules, graph.find_modules_directly_imported_by)
    print(f"module cycles: {len(cycles)} groups, {sum(map(len, cycles))} modules in them")
    for group in cycles:
        print("   ", group)
    packages = {top(m) for m in graph.modules}
    pkg_cycles = strongly_connected(
        packages, lambda p: {top(w) for m in graph.modules if top(m) == p
                             for w in graph.find_modules_directly_imported_by(m)} - {p})
    print(f"package cycles: {len(pkg_cycles)} groups: {pkg_cycles}")
    for module in ("genlab.evaluation", "genlab"):
        code = (f"import sys, {module}; print(sum(k == 'genlab' or k.startswith('genlab.') for k in sys.modules), "
                "'torch' in sys.modules)")
        loaded = subprocess.run([py, "-c", code], env=env, capture_output=True, text=True).stdout.split()
        trace = subprocess.run([py, "-X", "importtime", "-c", f"import {module}"], env=env, capture_output=True,
                               text=True).stderr
        total = [int(line.split("|")[1]) for line in trace.splitlines() if re.search(rf"\|\s+{module}$", line)]
        print(f"import {module}: {loaded[0]} genlab modules, torch imported: {loaded[1]}, "
              f"cumulative {total[-1] / 1e6:.3f} s (-X importtime)")
    probes = [where for where, line in source_lines(src, True) if PROBE.search(line)]
    print(f"hasattr/getattr probes of a model outside models/: {len(probes)}")
    names = [f"{where}: {line.strip()[:90]}" for where, line in source_lines(src, True) if NAME_LITERAL.search(line)]
    print(f"model names as string literals outside models/ and the registry: {len(names)}")
    for line in names:
        print("   ", line)
    for cmd in (["--help"], ["list"]):
        runs = [child_cpu([py, "-m", "genlab", *cmd], env) for _ in range(5)]
        print(f"genlab {' '.join(cmd)}: wall median {statistics.median(r[0] for r in runs):.3f} s, "
              f"CPU median {statistics.median(r[1] for r in runs):.2f} s (5 runs)")


if __name__ == "__main__":
    main()
