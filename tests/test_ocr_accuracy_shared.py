"""The real engine on real scans from ../shared/data, with a character error rate bound.

The full figures over every page come from ``make bench`` (bench/ocr_accuracy.py); this test
pins a sane bound on two small pages so a broken engine or reading order fails CI.
"""

import pytest

from bench.metrics import bag_f1, cer
from pipeline.prepare import PrecheckLimits, prepare_file
from pipeline.server.engines.pool import EngineRunner


@pytest.mark.real_ocr
@pytest.mark.shared_data
async def test_rapidocr_reads_real_scans_within_bounds(shared_data):
    pages = [
        (shared_data / "scribeocr-benchmark/img/receipt_03.png",
         (shared_data / "scribeocr-benchmark/gt_txt/receipt_03.txt").read_text(), 0.05),
        (shared_data / "cis-hobbes-1668/tif/0007.tif",
         (shared_data / "cis-hobbes-1668/gt/0007.gt.txt").read_text(), 0.15),
    ]
    runner = EngineRunner("rapidocr")
    await runner.start()
    try:
        for path, truth, bound in pages:
            data = prepare_file(path, PrecheckLimits()).pages[0].data
            text = (await runner.recognize(data, "en")).text
            edits, length = cer(truth, text)
            assert edits / length < bound, (path.name, edits / length, text[:300])
            assert bag_f1(truth, text) > 0.6
    finally:
        await runner.close()
