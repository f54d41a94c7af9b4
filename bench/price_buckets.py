"""Benchmark: the error of the size-bucket price estimate against per-file quotes.

Why: ``plan`` and the budget price each page by its size bucket (``pipeline.run.pricing``), one
price request per bucket, instead of asking the API about every file. This measures what that
costs in accuracy: every page of ``samples/`` and of the real scans in ``../shared/data`` is
prepared as a run would prepare it, quoted by the image itself (deAPI's variant A) and by its
bucket, against the project's server (price per uploaded megapixel, like a width/height price).
It prints one JSON line per set: pages, distinct buckets (= price requests), the largest and
mean relative error of one page, and the error of the whole set's total.

    python -m bench.price_buckets [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pdf")
MODEL = "Nanonets_Ocr_S_F16"


async def measure(name: str, files: list[Path]) -> dict:
    from pipeline.config import PdfConfig
    from pipeline.deapi import ClientSettings, DeapiClient
    from pipeline.inputs.pages import TextLayerPage, open_source
    from pipeline.inputs.prepare import PrecheckLimits
    from pipeline.run.pricing import BUCKET_ERROR, PriceBook
    from pipeline.server import EmbeddedServer, ServerConfig
    from pipeline.run.state import StateStore

    errors, exact_total, bucket_total = [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        state = StateStore(Path(tmp) / "state.sqlite")
        async with EmbeddedServer(ServerConfig(engine="fast", tokens=("bench",), profile="unlimited")) as srv:
            async with DeapiClient(srv.base_url, "bench", ClientSettings()) as api:
                book = PriceBook(state, api, model=MODEL, language="en", format="text", max_age_s=3600)
                for path in files:
                    source = open_source(path, PrecheckLimits(), PdfConfig())
                    for i in range(source.page_count):
                        page = source.page(i)
                        if isinstance(page, TextLayerPage):
                            continue
                        exact = await api.price(model=MODEL, data=page.data, filename=page.filename,
                                                content_type=page.content_type, language="en", format="text")
                        estimate = await book.quote(page.width, page.height)
                        errors.append(estimate / exact - 1)
                        exact_total += exact
                        bucket_total += estimate
                    source.close()
        state.close()
    return {"bench": "price_buckets", "set": name, "files": len(files), "pages": len(errors),
            "price_requests": book.requests, "bound": round(BUCKET_ERROR, 4),
            "max_abs_error": round(max(abs(e) for e in errors), 4) if errors else None,
            "mean_abs_error": round(sum(abs(e) for e in errors) / len(errors), 4) if errors else None,
            "total_error": round(bucket_total / exact_total - 1, 4) if exact_total else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    sets = [("samples", sorted(p for p in (ROOT / "samples").rglob("*") if p.suffix.lower() in EXTS))]
    if args.shared.is_dir():
        sets.append(("shared", sorted(p for p in args.shared.rglob("*") if p.suffix.lower() in EXTS)))
    for name, files in sets:
        print(json.dumps(asyncio.run(measure(name, files))), flush=True)


if __name__ == "__main__":
    main()
