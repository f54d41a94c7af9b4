"""The real engines through real worker processes, on small generated pages."""

import io

import pytest
from PIL import Image, ImageDraw

from helpers import font
from pipeline.server.engines import EngineError
from pipeline.server.engines.pool import EngineRunner


def page_bytes(lines_left, lines_right=None, size=(1400, 500)) -> bytes:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines_left):
        draw.text((40, 40 + i * 60), text, fill=0, font=font(36))
    for i, text in enumerate(lines_right or []):
        draw.text((760, 40 + i * 60), text, fill=0, font=font(36))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.real_ocr
@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
async def test_engine_reads_printed_words(engine):
    runner = EngineRunner(engine)
    await runner.start()
    try:
        page = await runner.recognize(page_bytes(["The quick brown fox", "jumps over the lazy dog"]), "en")
    finally:
        await runner.close()
    words = page.text.lower().split()
    for w in ("quick", "brown", "fox", "jumps", "lazy", "dog"):
        assert w in words, page.text
    assert page.engine == engine and all(0 <= ln.confidence <= 1 for ln in page.lines)


@pytest.mark.real_ocr
async def test_rapidocr_returns_two_columns_in_column_order():
    left = ["alpha one", "alpha two", "alpha three", "alpha four"]
    right = ["bravo one", "bravo two", "bravo three", "bravo four"]
    runner = EngineRunner("rapidocr")
    await runner.start()
    try:
        page = await runner.recognize(page_bytes(left, right), "en")
    finally:
        await runner.close()
    text = page.text.lower()
    assert text.index("alpha four") < text.index("bravo one"), page.text


async def test_undecodable_bytes_fail_the_job_not_the_worker():
    runner = EngineRunner("fast")
    await runner.start()
    try:
        with pytest.raises(EngineError) as err:
            await runner.recognize(b"not an image at all", None)
        assert err.value.code == "INVALID_INPUT"
        assert "FAST-OCR" in (await runner.recognize(page_bytes(["ok"]), None)).text
    finally:
        await runner.close()
