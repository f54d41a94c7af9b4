"""Benchmark: walk a tree of a million empty files with ``scan_tree``.

Why: the input side must stream. Targets: peak RSS < 150 MB, first entry in < 1 s, and a
healthy entries/s (one ``stat`` per file is the floor).

The tree (``--dirs`` x ``--per-dir`` empty files, default 1000 x 1000) is generated in a temp
directory and removed afterwards (``--keep`` keeps it and prints where). The walk runs in a
fresh child process so the generator's own peak RSS (``VmHWM``) is measured, not the
generator's. Prints a table and one JSON line.

    python -m bench.walk_tree [--entries 1000000] [--per-dir 1000] [--tree DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.metrics import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def make_tree(root: Path, entries: int, per_dir: int) -> float:
    t0 = time.perf_counter()
    n_dirs = math.ceil(entries / per_dir)
    made = 0
    for d in range(n_dirs):
        dpath = root / f"d{d:05d}"
        dpath.mkdir(parents=True, exist_ok=True)
        for f in range(min(per_dir, entries - made)):
            fd = os.open(dpath / f"scan-{f:06d}.png", os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
        made += min(per_dir, entries - made)
    return time.perf_counter() - t0




def _child(root: Path) -> dict:
    from pipeline.inputs.scan import ScanEntry, scan_tree

    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    gen = scan_tree(root)
    first = next(gen)
    t_first = time.perf_counter() - t0
    count, problems = (1, 0) if isinstance(first, ScanEntry) else (0, 1)
    for item in gen:
        if isinstance(item, ScanEntry):
            count += 1
        else:
            problems += 1
    elapsed = time.perf_counter() - t0
    return {"entries": count, "problems": problems, "first_entry_s": t_first, "seconds": elapsed,
            "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": rss_before}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--tree", type=Path, help="walk (and if empty, build) this directory")
    ap.add_argument("--keep", action="store_true", help="keep the generated tree")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0

    made_here = args.tree is None
    tree = args.tree or Path(tempfile.mkdtemp(prefix="walk-bench-"))
    try:
        build_s = None
        tree.mkdir(parents=True, exist_ok=True)
        if not any(tree.iterdir()):
            print(f"building {args.entries:,} empty files in {tree} ...", flush=True)
            build_s = make_tree(tree, args.entries, args.per_dir)
        # Drop nothing from the page cache (we cannot without root tricks): the walk is timed warm,
        # like a nightly run over a tree the OS has seen before.
        proc = subprocess.run([sys.executable, "-m", "bench.walk_tree", "--child", str(tree)],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        if made_here and not args.keep:
            shutil.rmtree(tree, ignore_errors=True)
        elif made_here:
            print(f"kept tree at {tree}")

    rate = r["entries"] / r["seconds"] if r["seconds"] else float("inf")
    print(f"\nwalked {r['entries']:,} files in {args.entries // args.per_dir or 1:,} dirs "
          f"(warm cache; build took {build_s:.1f} s)" if build_s else f"\nwalked {r['entries']:,} files")
    print(f"{'figure':<28}{'measured':>14}{'target':>12}")
    print(f"{'peak RSS (MB)':<28}{r['peak_rss_mb']:>14.1f}{'< 150':>12}")
    print(f"{'  of which imports (MB)':<28}{r['rss_after_imports_mb']:>14.1f}{'':>12}")
    print(f"{'time to first entry (s)':<28}{r['first_entry_s']:>14.4f}{'< 1':>12}")
    print(f"{'total time (s)':<28}{r['seconds']:>14.1f}{'':>12}")
    print(f"{'entries/s':<28}{rate:>14,.0f}{'':>12}")
    print(json.dumps({
        "bench": "walk_tree", "entries": r["entries"], "problems": r["problems"],
        "peak_rss_mb": round(r["peak_rss_mb"], 1), "first_entry_s": round(r["first_entry_s"], 4),
        "seconds": round(r["seconds"], 2), "entries_per_s": round(rate),
        "met": r["peak_rss_mb"] < 150 and r["first_entry_s"] < 1.0 and r["entries"] == args.entries,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
