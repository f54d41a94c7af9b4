"""Benchmark: preparing a 60-megapixel JPEG over 10 MB, against the naive full decode + resize.

Why: phone and flatbed scans arrive as huge JPEGs that must be shrunk to <= 4096 px and
<= 10 MB. ``prepare_file`` decodes them at 1/2, 1/4 or 1/8 scale with libjpeg's DCT scaling
(``Image.draft``); the naive way decodes every pixel first. Targets: prepare < 1 s, and at least
3x faster than a full decode + resize.

Each variant runs in a fresh child process (``--child VARIANT PATH``) so its peak RSS
(``ru_maxrss``) is its own; times are the median of ``--repeat`` runs. The generated JPEG is
cached in ``.bench/`` (git-ignored). Prints a table and one JSON line.

    python -m bench.prepare_big_jpeg [--width 9000 --height 6667] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.metrics import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench"


def make_jpeg(path: Path, width: int, height: int, grain: float) -> None:
    """A photo-like page: gradients plus sensor grain (``grain`` = noise sigma), so it is really
    big at q92 but not pure noise. More grain = more entropy-decoding work, which DCT scaling
    cannot skip, so a grainier file narrows the speed-up."""
    from PIL import Image

    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), grain)
    im = Image.merge("RGB", (Image.blend(base, noise, 0.5), Image.blend(base, noise, 0.3), base))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    im.save(tmp, "JPEG", quality=92)
    tmp.replace(path)


def _child(variant: str, path: Path) -> dict:
    from PIL import Image

    from pipeline.inputs.prepare import PrecheckLimits, prepare_file

    limits = PrecheckLimits()
    Image.MAX_IMAGE_PIXELS = limits.max_source_pixels
    t0 = time.perf_counter()
    out: dict = {}
    if variant == "prepare":
        pf = prepare_file(path, limits)
        page = pf.pages[0]
        out = {"bytes": len(page.data), "width": page.width, "height": page.height,
               "transforms": list(page.transforms)}
    elif variant in ("decode_resize", "decode_resize_encode"):
        import io
        with Image.open(path) as im:
            im.load()
            fit = min(1.0, limits.max_width / im.width, limits.max_height / im.height)
            small = im.resize((round(im.width * fit), round(im.height * fit)), Image.Resampling.LANCZOS)
        if variant == "decode_resize_encode":
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=limits.jpeg_quality)
            out = {"bytes": buf.tell()}
        out.update(width=small.width, height=small.height)
    elif variant != "baseline":
        raise SystemExit(f"unknown variant {variant}")
    out["seconds"] = time.perf_counter() - t0
    out["max_rss_mb"] = peak_rss_mb()
    return out




def _run_child(variant: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.prepare_big_jpeg", "--child", variant, str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=9000)
    ap.add_argument("--height", type=int, default=6667)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--grain", type=float, default=12.0, help="noise sigma of the generated photo")
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]))))
        return 0

    path = CACHE / f"big-{args.width}x{args.height}-grain{args.grain:g}.jpg"
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        make_jpeg(path, args.width, args.height, args.grain)
    size = path.stat().st_size
    results = {}
    for variant in ("baseline", "prepare", "decode_resize", "decode_resize_encode"):
        runs = [_run_child(variant, path) for _ in range(args.repeat)]
        results[variant] = {**runs[-1], "seconds": statistics.median(r["seconds"] for r in runs),
                            "max_rss_mb": max(r["max_rss_mb"] for r in runs)}

    p, dr, dre = results["prepare"], results["decode_resize"], results["decode_resize_encode"]
    base_rss = results["baseline"]["max_rss_mb"]
    mpx = args.width * args.height / 1e6
    print(f"\nsource: {args.width}x{args.height} = {mpx:.1f} Mpx JPEG (grain {args.grain:g}), {size / 1e6:.1f} MB; "
          f"median of {args.repeat} fresh processes; interpreter+imports RSS {base_rss:.0f} MB")
    print(f"{'variant':<34}{'seconds':>9}{'peak RSS MB':>13}{'output':>26}")
    for name, r in (("prepare_file (DCT draft)", p), ("full decode + resize", dr),
                    ("full decode + resize + encode", dre)):
        outp = f"{r['width']}x{r['height']}" + (f", {r['bytes'] / 1e6:.1f} MB" if "bytes" in r else "")
        print(f"{name:<34}{r['seconds']:>9.3f}{r['max_rss_mb']:>13.0f}{outp:>26}")
    speedup = dr["seconds"] / p["seconds"]
    speedup_enc = dre["seconds"] / p["seconds"]
    print(f"\nspeed-up vs decode+resize: {speedup:.1f}x (target >= 3x); "
          f"vs decode+resize+encode: {speedup_enc:.1f}x; prepare < 1 s: {p['seconds'] < 1.0}")
    print(f"prepare transforms: {p['transforms']}")
    print(json.dumps({
        "bench": "prepare_big_jpeg", "source_mpx": round(mpx, 1), "source_mb": round(size / 1e6, 1),
        "grain": args.grain,
        "prepare_s": round(p["seconds"], 3), "decode_resize_s": round(dr["seconds"], 3),
        "decode_resize_encode_s": round(dre["seconds"], 3), "speedup": round(speedup, 2),
        "speedup_incl_encode": round(speedup_enc, 2),
        "prepare_peak_rss_mb": round(p["max_rss_mb"]), "naive_peak_rss_mb": round(dr["max_rss_mb"]),
        "baseline_rss_mb": round(base_rss), "output_mb": round(p["bytes"] / 1e6, 2),
        "output_px": f"{p['width']}x{p['height']}",
        "met": p["seconds"] < 1.0 and speedup >= 3.0 and p["bytes"] <= 10_000_000,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
