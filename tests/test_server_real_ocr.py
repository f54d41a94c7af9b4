"""One end-to-end check with the real default engine: RapidOCR behind the server reads the words
of a small generated page (seconds, so only this one test runs real OCR)."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest
from PIL import Image, ImageDraw

from helpers import font
from pipeline.server import EmbeddedServer, ServerConfig
from test_server_support import TOKEN, submit, wait_done

pytestmark = pytest.mark.real_ocr


def page(lines: list[str]) -> bytes:
    img = Image.new("RGB", (900, 80 + 60 * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 60 * i), line, fill="black", font=font(40))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def test_rapidocr_reads_the_words_back_as_text_and_json():
    async with EmbeddedServer(ServerConfig(engine="rapidocr", tokens=(TOKEN,))) as srv, \
            aiohttp.ClientSession() as http:
        image = page(["Invoice number 4721", "Total amount due"])
        status, body = await submit(http, srv.base_url, image=image, format="json", return_result_in_response="true",
                                    language="en")
        assert status == 200
        data = await wait_done(http, srv.base_url, body["data"]["request_id"], polls=20_000)
        assert data["status"] == "done", data
        doc = json.loads(data["result"])
        assert doc["engine"] == "rapidocr" and (doc["width"], doc["height"]) == (900, 200)
        words = doc["text"].lower()
        for word in ("invoice", "4721", "total", "amount", "due"):
            assert word in words, doc["text"]
        lines = [line for block in doc["blocks"] for line in block["lines"]]
        assert all(0 < line["confidence"] <= 1 and len(line["box"]) == 4 for line in lines)
