"""prepare_file: every rejection code, every conversion, and the byte/pixel limits, on files the
tests make themselves. No OCR, no network."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw

from helpers import run_as_nobody, text_page
from pipeline.inputs.geometry import SWAPPING_ORIENTATIONS
from pipeline.inputs.prepare import PrecheckLimits, PreparedFile, RejectedInput, pixel_stretch, prepare_file

LIMITS = PrecheckLimits()
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _noise_rgb(w: int, h: int, seed: int = 1) -> Image.Image:
    return Image.frombytes("RGB", (w, h), random.Random(seed).randbytes(w * h * 3))


def _reject(path: Path, limits: PrecheckLimits = LIMITS) -> RejectedInput:
    with pytest.raises(RejectedInput) as info:
        prepare_file(path, limits)
    exc = info.value
    assert exc.reason and len(exc.reason) > 15, "a reason a person can act on"
    return exc


def _decode(page) -> Image.Image:
    im = Image.open(io.BytesIO(page.data))
    im.load()
    return im


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header declaring any size, with a few bytes of pixel data: cheap bombs."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


# ------------------------------------------------------------------------------- rejections


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    assert _reject(p).code == "empty_file"


def test_text_file_named_jpg_is_not_an_image_and_says_it_is_text(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("Shopping list:\nmilk, eggs\n")
    exc = _reject(p)
    assert exc.code == "not_an_image"
    assert "text" in exc.reason and "Shopping list" in exc.reason and "the extension lies" in exc.reason
    named_as_text = tmp_path / "notes.txt"   # taken by include: ["**/*"]: its name is no lie
    named_as_text.write_text("Shopping list:\nmilk, eggs\n")
    exc = _reject(named_as_text)
    assert exc.code == "not_an_image" and "Shopping list" in exc.reason and "lies" not in exc.reason


def test_pdf_is_not_an_image_with_a_hint(tmp_path):
    p = tmp_path / "scan.png"
    p.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    exc = _reject(p)
    assert exc.code == "not_an_image" and "PDF" in exc.reason


def test_a_djvu_book_is_named_with_the_way_to_convert_it(tmp_path):
    """A DjVu book (include: ["**/*"]) was 'not an image format Pillow can read (first bytes:
    41 54 26 54 ...)'; its owner is told what it is and how to make TIFF pages of it."""
    p = tmp_path / "book.djvu"
    p.write_bytes(b"AT&TFORM\x00\x00\x00\x64DJVMDIRM" + bytes(90))
    rejected = _reject(p)
    assert rejected.code == "not_an_image" and "DjVu document" in rejected.reason and "ddjvu" in rejected.reason


def _with_precision(jpeg: bytes, bits: int) -> bytes:
    """The JPEG with its frame header's sample precision set to ``bits`` (no tool here writes a
    12-bit JPEG; Pillow refuses one at its header, before any scan data is read)."""
    at = jpeg.index(b"\xff\xc0") + 4
    return jpeg[:at] + bytes([bits]) + jpeg[at + 1:]


def test_a_12_bit_jpeg_is_named_as_one_not_called_damaged(tmp_path):
    """A 12-bit JPEG (medical and some archival masters) behind an EXIF block and a colour
    profile of two segments: Pillow reads 8-bit JPEGs only and cannot identify it, and the
    rejection said 'its header is damaged or cut short; copy or export it again', which helps
    no one. It now says what the file is and how to convert it."""
    out = io.BytesIO()
    text_page("Twelve bits", (300, 100)).save(out, "JPEG", exif=Image.Exif().tobytes(), icc_profile=bytes(70000))
    p = tmp_path / "master.jpg"
    p.write_bytes(_with_precision(out.getvalue(), 12))
    rejected = _reject(p)
    assert rejected.code == "not_an_image" and "12-bit JPEG" in rejected.reason and "convert" in rejected.reason
    p.write_bytes(_with_precision(out.getvalue(), 8)[:400])          # a damaged 8-bit one is still damaged
    assert _reject(p).code in ("corrupt", "truncated")


def test_binary_garbage_is_not_an_image(tmp_path):
    p = tmp_path / "blob.bmp"
    p.write_bytes(bytes(range(256)) * 4)
    exc = _reject(p)
    assert exc.code == "not_an_image" and "00 01 02" in exc.reason


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    _noise_rgb(400, 300).save(buf, "JPEG", quality=90)
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert _reject(p).code == "truncated"


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    _noise_rgb(300, 300).save(buf, "PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    assert _reject(p).code in ("truncated", "corrupt")


def test_corrupt_png_data_is_rejected(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (300, 300), 128).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = data.index(b"IDAT") + 4
    data[start:start + 20] = b"\xff" * 20          # wreck the zlib stream
    p = tmp_path / "bad.png"
    p.write_bytes(bytes(data))
    assert _reject(p).code in ("corrupt", "truncated")


def _png_with_icc_of(size: int) -> bytes:
    """A small grey PNG carrying an ICC profile chunk that unpacks to ``size`` bytes."""
    buf = io.BytesIO()
    text_page("profiled", (300, 100)).save(buf, "PNG")
    png = buf.getvalue()
    body = b"printer\x00\x00" + zlib.compress(bytes(size), 9)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return png[:33] + chunk + png[33:]   # after the signature and IHDR


def test_a_png_with_a_colour_profile_of_a_few_mb_is_read(tmp_path):
    """Pillow's 1 MB limit for a compressed PNG chunk refused a PNG with a 2 MB ICC profile
    whole, and the rejection said its image data was damaged."""
    ok = tmp_path / "profiled.png"
    ok.write_bytes(_png_with_icc_of(2 << 20))
    prepared = prepare_file(ok)
    assert (prepared.source_width, prepared.source_height) == (300, 100)
    too_big = tmp_path / "huge-profile.png"
    too_big.write_bytes(_png_with_icc_of(20 << 20))
    rejected = _reject(too_big)
    assert rejected.code == "corrupt" and "metadata chunk" in rejected.reason
    assert "image data is damaged" not in rejected.reason


def test_decompression_bomb_header_is_rejected_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(100_000, 100_000))      # 10 Gpx declared, 33 bytes on disk
    exc = _reject(p)
    assert exc.code == "decompression_bomb"
    assert "max_source_pixels" in exc.reason


def test_decompression_bomb_uses_our_configured_limit(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(_png_header_only(3000, 3000))             # 9 Mpx: fine for Pillow, not for us
    exc = _reject(p, PrecheckLimits(max_source_pixels=5_000_000))
    assert exc.code == "decompression_bomb" and "3000x3000" in exc.reason


def test_a_bomb_caught_by_pillow_is_told_in_the_words_of_one_caught_by_us(tmp_path):
    """Pillow's own guard (at open, past twice its process-wide limit) and ours (on the header)
    say the same thing, apart from what the file declares."""
    ours, pillows = tmp_path / "ours.png", tmp_path / "pillows.png"
    ours.write_bytes(_png_header_only(3000, 3000))
    pillows.write_bytes(_png_header_only(100_000, 100_000))
    by_us = _reject(ours, PrecheckLimits(max_source_pixels=5_000_000)).reason
    by_pillow = _reject(pillows, PrecheckLimits(max_source_pixels=5_000_000)).reason
    assert by_pillow.startswith("the image declares 10,000,000,000 pixels, over max_source_pixels=5,000,000")
    assert by_us.split(" pixels, ", 1)[1] == by_pillow.split(" pixels, ", 1)[1]


def test_image_between_pillow_default_and_our_limit_is_not_called_a_bomb(tmp_path):
    # 12000 x 16000 = 192 Mpx: over Pillow's default error threshold (2 x 89 Mpx) but under our
    # 250 Mpx limit. It must not be rejected as a bomb; a header alone is then "truncated".
    p = tmp_path / "huge-but-allowed.png"
    p.write_bytes(_png_header_only(12000, 16000))
    assert _reject(p).code in ("truncated", "corrupt")


def test_fifo_is_unreadable_and_never_opened(tmp_path):
    p = tmp_path / "pipe.jpg"
    os.mkfifo(p)
    exc = _reject(p)        # opening a FIFO for reading would block forever
    assert exc.code == "unreadable" and "FIFO" in exc.reason


def test_directory_and_vanished_path_are_unreadable(tmp_path):
    d = tmp_path / "dir.jpg"
    d.mkdir()
    assert _reject(d).code == "unreadable"
    assert _reject(tmp_path / "gone.jpg").code == "unreadable"


def test_permission_denied_is_unreadable(tmp_path):
    """chmod 000 on the file. Root ignores permissions, so as root the check runs in a forked
    child that drops its effective uid/gid to 65534 (nobody) first; skipped only if that fails."""
    src = io.BytesIO()
    Image.new("L", (200, 200), 255).save(src, "PNG")
    if os.geteuid() != 0:
        p = tmp_path / "secret.png"
        p.write_bytes(src.getvalue())
        p.chmod(0)
        try:
            exc = _reject(p)
        finally:
            p.chmod(0o644)
        assert exc.code == "unreadable" and "permission" in exc.reason.lower()
        return
    work = Path(tempfile.mkdtemp(prefix="prep-perm-"))     # /tmp/pytest-of-root is 0700
    try:
        work.chmod(0o755)
        p = work / "secret.png"
        p.write_bytes(src.getvalue())
        p.chmod(0)
        def attempt() -> list[str]:
            try:
                prepare_file(p, LIMITS)
                return ["accepted"]
            except RejectedInput as e:
                return [e.code, e.reason]

        out = run_as_nobody(attempt)
        if out and out[0].startswith("child-error"):
            pytest.skip(f"running as root and could not drop privileges to test permissions: {out[1:]}")
        assert out[0] == "unreadable", out
        assert "permission" in out[1].lower()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_too_many_pages(tmp_path):
    pages = [Image.new("1", (200, 200), 1) for _ in range(4)]
    p = tmp_path / "many.tif"
    pages[0].save(p, save_all=True, append_images=pages[1:], compression="group4")
    assert _reject(p, PrecheckLimits(max_pages=3)).code == "too_many_pages"


# ------------------------------------------------------------------------------- pass-through


def test_acceptable_original_is_sent_byte_for_byte(tmp_path):
    p = tmp_path / "photo.jpg"
    _noise_rgb(640, 480).save(p, "JPEG", quality=85)
    original = p.read_bytes()
    pf = prepare_file(p, LIMITS)
    (page,) = pf.pages
    assert page.data == original
    assert page.transforms == () and page.passthrough
    assert page.scale == 1.0 and (page.width, page.height) == (640, 480)
    assert page.sha256 == hashlib.sha256(original).hexdigest()
    assert page.content_type == "image/jpeg" and page.filename == "photo.jpg"


def test_extension_lies_but_content_decides(tmp_path):
    p = tmp_path / "page.jpg"                          # really a PNG
    Image.new("L", (300, 200), 255).save(p, "PNG")
    pf = prepare_file(p, LIMITS)
    assert pf.source_format == "PNG"
    (page,) = pf.pages
    assert page.data == p.read_bytes()
    assert page.content_type == "image/png" and page.filename == "page.png"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP"])
def test_other_accepted_formats_pass_through(tmp_path, fmt):
    p = tmp_path / f"x.{fmt.lower()}"
    Image.new("RGB", (200, 150), (200, 10, 10)).save(p, fmt)
    (page,) = prepare_file(p, LIMITS).pages
    assert page.passthrough and page.format == fmt and page.data == p.read_bytes()


# ------------------------------------------------------------------------------- fitting


def test_30mb_jpeg_ends_under_10mb_and_4096px(tmp_path):
    p = tmp_path / "huge.jpg"
    _noise_rgb(6000, 4500).save(p, "JPEG", quality=95)
    assert p.stat().st_size > 25_000_000
    pf = prepare_file(p, LIMITS)
    (page,) = pf.pages
    assert len(page.data) <= LIMITS.max_upload_bytes
    assert page.width <= 4096 and page.height <= 4096
    assert page.format == "JPEG"
    assert page.width == 4096 and abs(page.scale - 4096 / 6000) < 1e-3
    im = _decode(page)
    assert im.size == (page.width, page.height)
    assert pf.source_width == 6000 and pf.source_height == 4500


def test_15mb_png_ends_under_10mb(tmp_path):
    p = tmp_path / "huge.png"
    _noise_rgb(2400, 2200).save(p, "PNG")
    assert p.stat().st_size > 14_000_000
    (page,) = prepare_file(p, LIMITS).pages
    assert len(page.data) <= LIMITS.max_upload_bytes
    assert page.width <= 4096 and page.height <= 4096
    assert "convert:PNG->JPEG" in page.transforms      # colour content → JPEG
    assert _decode(page).size == (page.width, page.height)


def test_big_jpeg_uses_dct_scaling(tmp_path):
    p = tmp_path / "wide.jpg"
    Image.linear_gradient("L").resize((8400, 600)).convert("RGB").save(p, "JPEG", quality=90)
    (page,) = prepare_file(p, LIMITS).pages
    # decoded at half size and only shrunk from there: never brought back to full size first
    assert page.transforms == ("convert:JPEG->PNG", "jpeg_draft:1/2", "mode:RGB->L", "downscale:0.4876")
    assert (page.width, page.height) == (4096, 293)


def test_quality_ladder_then_downscale_fits_a_tight_limit(tmp_path):
    p = tmp_path / "noise.png"
    _noise_rgb(800, 800).save(p, "PNG")
    limits = PrecheckLimits(max_upload_bytes=150_000)
    (page,) = prepare_file(p, limits).pages
    assert len(page.data) <= 150_000
    assert page.scale < 1.0 and any(t.startswith("downscale:") for t in page.transforms)
    q = [int(t.split(":")[1]) for t in page.transforms if t.startswith("jpeg_quality:")]
    assert q and limits.min_jpeg_quality <= q[0] <= limits.jpeg_quality


def test_tiny_image_is_padded_to_the_minimum(tmp_path):
    p = tmp_path / "tiny.png"
    im = Image.new("L", (50, 20), 255)
    ImageDraw.Draw(im).rectangle((0, 0, 9, 9), fill=0)         # a mark at the top-left
    im.save(p)
    (page,) = prepare_file(p, LIMITS).pages
    assert (page.width, page.height) == (128, 127)
    assert "pad:128x127" in page.transforms and page.scale == 1.0
    out = _decode(page)
    assert out.size == (128, 127)
    assert out.getpixel((2, 2)) == 0                 # source pixels kept at their coordinates
    assert out.getpixel((120, 120)) == 255           # padding is white


def test_strip_that_is_too_long_and_too_thin_is_downscaled_then_padded(tmp_path):
    p = tmp_path / "strip.png"
    Image.new("L", (20000, 60), 255).save(p)
    (page,) = prepare_file(p, LIMITS).pages
    assert page.width == 4096 and page.height == 127
    assert abs(page.scale - 4096 / 20000) < 1e-4
    assert any(t.startswith("pad:") for t in page.transforms)


def test_exif_rotation_swaps_width_and_height_and_makes_it_upright(tmp_path):
    upright = Image.new("RGB", (600, 300), (255, 255, 255))
    ImageDraw.Draw(upright).rectangle((0, 0, 99, 99), fill=(200, 0, 0))   # red at top-left
    stored = upright.transpose(Image.Transpose.ROTATE_90)                  # 300 x 600
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "sideways.jpg"
    stored.save(p, "JPEG", quality=95, exif=exif.tobytes())
    pf = prepare_file(p, LIMITS)
    (page,) = pf.pages
    assert (pf.source_width, pf.source_height) == (300, 600)
    assert (page.width, page.height) == (600, 300)
    assert "exif_transpose:6" in page.transforms
    out = _decode(page)
    r, g, b = out.convert("RGB").getpixel((20, 20))
    assert r > 150 and g < 80 and b < 80
    assert out.getexif().get(0x0112, 1) == 1        # no orientation left to apply twice


def test_multipage_tiff_becomes_one_png_per_page(tmp_path):
    pages = []
    for i in range(3):
        im = Image.new("L", (400 + i * 10, 300), 255)
        ImageDraw.Draw(im).rectangle((10, 10, 50 + 40 * i, 50), fill=0)
        pages.append(im)
    p = tmp_path / "doc.tif"
    pages[0].save(p, save_all=True, append_images=pages[1:], compression="tiff_deflate")
    pf = prepare_file(p, LIMITS)
    assert pf.source_format == "TIFF" and pf.page_count == 3 and len(pf.pages) == 3
    assert [pg.page_index for pg in pf.pages] == [0, 1, 2]
    assert len({pg.filename for pg in pf.pages}) == 3
    for i, pg in enumerate(pf.pages):
        assert pg.format == "PNG" and "convert:TIFF->PNG" in pg.transforms
        assert pg.width == 400 + i * 10
        assert _decode(pg).tobytes() == pages[i].tobytes()     # lossless


def test_animated_gif_sends_first_frame_only(tmp_path):
    frames = []
    for i in range(3):
        im = Image.new("P", (200, 200), 0)
        ImageDraw.Draw(im).rectangle((0, 0, 20 + 50 * i, 20), fill=i + 1)
        frames.append(im)
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)
    pf = prepare_file(p, LIMITS)
    assert pf.page_count == 1
    assert "first_frame_of:3" in pf.pages[0].transforms


def test_camera_mpo_is_a_jpeg_and_passes_through(tmp_path):
    p = tmp_path / "camera.jpg"
    main, preview = _noise_rgb(640, 480), _noise_rgb(160, 120, seed=2)
    main.save(p, "MPO", save_all=True, append_images=[preview])
    with Image.open(p) as im:
        assert im.format == "MPO" and im.n_frames == 2
    pf = prepare_file(p, LIMITS)
    assert pf.source_format == "JPEG"
    (page,) = pf.pages
    assert page.passthrough and page.data == p.read_bytes() and page.content_type == "image/jpeg"


def test_grayscale_text_page_is_sent_as_png(tmp_path):
    im = Image.new("L", (1200, 800), 255)
    ImageDraw.Draw(im).text((50, 50), "The quick brown fox", fill=0)
    p = tmp_path / "page.tif"                         # TIFF: the API does not take it
    im.save(p, compression="tiff_lzw")
    (page,) = prepare_file(p, LIMITS).pages
    assert page.format == "PNG" and page.content_type == "image/png"
    assert _decode(page).mode in ("L", "1")


def test_gray_content_in_rgb_is_stored_as_gray_png(tmp_path):
    im = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(im).text((20, 20), "gray text", fill=30)
    p = tmp_path / "rgbgray.tif"
    im.convert("RGB").save(p)
    (page,) = prepare_file(p, LIMITS).pages
    assert page.format == "PNG" and "mode:RGB->L" in page.transforms
    assert _decode(page).mode == "L"


def test_colour_only_near_the_foot_of_an_rgb_page_keeps_it_colour(tmp_path):
    """Grey-as-RGB is judged band by band; a page grey but for a stamp in its last band is colour."""
    im = Image.new("RGB", (1000, 2000), (250, 250, 250))
    ImageDraw.Draw(im).text((20, 20), "gray text", fill=(30, 30, 30))
    im.putpixel((500, 1995), (200, 30, 30))
    p = tmp_path / "stamp.tif"                        # TIFF: converted, never passed through
    im.save(p, compression="tiff_lzw")
    (page,) = prepare_file(p, PrecheckLimits(rotate_pages="off", deskew="off")).pages
    assert page.format == "JPEG" and "mode:RGB->L" not in page.transforms


_PEAK_CHILD = ("import sys\n"
               "from pathlib import Path\n"
               "from pipeline.inputs.prepare import PrecheckLimits, prepare_file\n"
               "def kb(key):\n"
               "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
               "before = kb('VmRSS')\n"
               "(page,) = prepare_file(Path(sys.argv[1]), PrecheckLimits(rotate_pages='off', deskew='off')).pages\n"
               "assert sys.argv[2] in page.transforms, page.transforms\n"
               "print((kb('VmHWM') - before) * 1024)\n")


def test_a_big_grey_page_saved_as_rgb_is_made_grey_without_copying_its_channels(tmp_path):
    """Grey-as-RGB was found by splitting the whole page into its three channels and comparing
    them: three more page-sized images (a 12000 x 16000 scan: 576 MB more). Now band by band:
    an 8000 x 6000 grey-as-RGB page (137 MB decoded) is prepared within 2.35 times its decoded
    size above the process's memory before (measured: 2.0 times; 2.7 before the change)."""
    im = Image.new("RGB", (8000, 6000), (250, 250, 250))
    im.paste((20, 20, 20), (100, 100, 7900, 140))
    p = tmp_path / "grey-as-rgb.png"
    im.save(p, compress_level=1)
    decoded = 8000 * 6000 * 3
    peak = _peak_preparing(p, "mode:RGB->L")
    assert peak < 2.35 * decoded, peak / decoded


def _peak_preparing(path: Path, transform: str) -> int:
    """Bytes the memory of a fresh process grew to while preparing ``path`` (which must record
    ``transform``), above what it held before."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(path), transform], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return int(out.stdout)


def test_a_big_16_bit_grey_page_is_made_8_bit_without_32_bit_copies(tmp_path):
    """A 16-bit grey page was stretched to 8 bits through a 32-bit integer copy (its extrema) and
    a 32-bit float one: a 6000 x 4000 page (48 MB decoded) took 5.6 times its decoded size, a
    9000 x 12000 newspaper scan 1.2 GB (a tour), twice that with two prepare workers. Now band
    by band (``ocr/imaging.wide_gray_to_l``): 2.3 times."""
    im = Image.new("I;16", (6000, 4000), 60000)
    ImageDraw.Draw(im).rectangle((100, 100, 5900, 140), fill=3000)
    p = tmp_path / "master16.png"
    im.save(p, compress_level=1)
    peak = _peak_preparing(p, "mode:I;16->L")
    assert peak < 3.0 * 6000 * 4000 * 2, peak / (6000 * 4000 * 2)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    p = tmp_path / "print.jpg"
    Image.new("CMYK", (300, 200), (0, 80, 80, 0)).save(p, "JPEG")
    (page,) = prepare_file(p, LIMITS).pages
    assert not page.passthrough and "mode:CMYK->RGB" in page.transforms
    assert _decode(page).mode == "RGB"


def test_transparent_png_too_small_is_flattened_on_white(tmp_path):
    p = tmp_path / "logo.png"
    Image.new("RGBA", (100, 100), (255, 0, 0, 0)).save(p)
    (page,) = prepare_file(p, LIMITS).pages
    assert "flatten_alpha:white" in page.transforms
    assert _decode(page).convert("RGB").getpixel((50, 50)) == (255, 255, 255)


def test_ppm_is_converted(tmp_path):
    p = tmp_path / "scan.ppm"
    _noise_rgb(300, 200).save(p)
    (page,) = prepare_file(p, LIMITS).pages
    assert page.format == "JPEG" and "convert:PPM->JPEG" in page.transforms


@pytest.mark.parametrize("name", ["master.jp2", "master.jpf", "master.jpx", "master.j2k"])
def test_jpeg_2000_masters_are_found_and_converted(tmp_path, name):
    """JPEG 2000, the format of many archives' masters, in each of its file extensions: found by
    the default globs, and converted (the API takes no JPEG 2000)."""
    from pipeline.config import IMAGE_GLOBS
    from pipeline.inputs.scan import ScanEntry, scan_tree

    (tmp_path / "in").mkdir()
    p = tmp_path / "in" / name
    _noise_rgb(300, 200).save(p, "JPEG2000")
    found = list(scan_tree(tmp_path / "in", include=IMAGE_GLOBS, min_age_s=0))
    assert [e.rel for e in found if isinstance(e, ScanEntry)] == [name]
    (page,) = prepare_file(p, LIMITS).pages
    assert page.format in ("PNG", "JPEG") and any(t.startswith("convert:JPEG2000->") for t in page.transforms)
    assert _decode(page).size == (300, 200)


def test_to_json_has_the_facts_and_no_bytes(tmp_path):
    p = tmp_path / "doc.tif"
    Image.new("L", (300, 200), 255).save(p)
    pf = prepare_file(p, LIMITS)
    assert isinstance(pf, PreparedFile)
    doc = json.loads(json.dumps(pf.to_json()))
    assert doc["source_format"] == "TIFF" and doc["page_count"] == 1
    assert doc["source_width"] == 300 and doc["source_height"] == 200
    page = doc["pages"][0]
    assert page["bytes"] == len(pf.pages[0].data) and "data" not in page
    assert page["transforms"] == list(pf.pages[0].transforms)


def test_the_shipped_samples_prepare_as_documented():
    if not (SAMPLES / "letters").is_dir():
        pytest.fail("samples/ missing: run python samples/make_samples.py")
    side = prepare_file(SAMPLES / "photos" / "sideways-note.jpg", LIMITS)
    assert side.pages[0].width > side.pages[0].height           # upright after EXIF
    assert prepare_file(SAMPLES / "reports" / "report-3pages.tif", LIMITS).page_count == 3
    assert prepare_file(SAMPLES / "letters" / "1952" / "letter-01.png", LIMITS).pages[0].passthrough


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        PrecheckLimits(min_width=5000)
    with pytest.raises(ValueError):
        PrecheckLimits(jpeg_quality=50, min_jpeg_quality=70)


@pytest.mark.parametrize("dpi,orientation,want", [
    ((204, 98), 1, (1.0, 204 / 98)),        # a fax at standard resolution: rows stretched
    ((204, 98), 6, (204 / 98, 1.0)),        # ... stored sideways: its rows are the page's columns
    ((98, 204), 1, (204 / 98, 1.0)),
    ((204, 196), 1, (1.0, 1.0)),            # fine resolution: within a rounding, left alone
    ((300, 1), 1, (1.0, 1.0)),              # a broken header, not a scanner's
    ((0, 98), 1, (1.0, 1.0)),
    (None, 1, (1.0, 1.0))])
def test_pixels_are_made_square_by_the_stated_resolution(dpi, orientation, want):
    im = Image.new("1", (1728, 1100), 1)
    if dpi is not None:
        im.info["dpi"] = dpi
    swap = orientation in SWAPPING_ORIENTATIONS
    assert pixel_stretch(im, swap) == pytest.approx(want)
    # a page that would be too big stretched shrinks its sharper axis instead
    assert pixel_stretch(im, swap, 1728 * 1100 * 2) == pytest.approx(tuple(v / max(want) for v in want))


def _planar_tiff(path: Path, im: Image.Image, bits: int) -> Path:
    """An uncompressed TIFF of ``im`` (RGB, or LA: grey with an alpha) stored plane by plane
    (PlanarConfiguration 2), one strip a plane, ``bits`` (8 or 16) a sample: Pillow writes no
    such file."""
    w, h = im.size
    dtype = "<u2" if bits == 16 else "u1"
    planes = [(np.asarray(band, dtype=dtype) * (257 if bits == 16 else 1)).astype(dtype).tobytes()
              for band in im.split()]
    n = len(planes)
    offsets = [8 + sum(len(q) for q in planes[:i]) for i in range(n)]
    tail = 8 + sum(len(q) for q in planes)              # the arrays the tags point to
    arrays = struct.pack(f"<{n}H", *[bits] * n) + struct.pack(f"<{n}I", *offsets) \
        + struct.pack(f"<{n}I", *(len(q) for q in planes))
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, n, tail if n > 2 else bits | bits << 16),
            (259, 3, 1, 1), (262, 3, 1, 2 if n == 3 else 1), (273, 4, n, tail + 2 * n),
            (277, 3, 1, n), (278, 4, 1, h), (279, 4, n, tail + 6 * n), (284, 3, 1, 2)]
    tags += [(338, 3, 1, 2)] if n == 2 else []          # ExtraSamples: unassociated alpha
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0" * 4
    path.write_bytes(b"II*\0" + struct.pack("<I", tail + len(arrays)) + b"".join(planes) + arrays + ifd)
    return path


@pytest.mark.parametrize("bits", [8, 16])
def test_a_tiff_of_16_bit_planes_is_read_as_it_shows(tmp_path, bits):
    """An uncompressed TIFF stored plane by plane at 16 bits a sample (a scanner's or an image
    editor's master): Pillow read each plane as 8-bit samples and the page was sent as two
    shifted, striped copies of itself (a tour's page: 60 % of its words read). Now libtiff reads
    it (``ocr/imaging.py``); an 8-bit one, which Pillow reads right, is the control."""
    page = text_page("Planar sixteen bit master", (600, 200), mode="RGB")
    (sent,) = prepare_file(_planar_tiff(tmp_path / "master.tif", page, bits), LIMITS).pages
    assert "mode:RGB->L" in sent.transforms
    assert _decode(sent).tobytes() == page.convert("L").tobytes()


@pytest.mark.parametrize("compression", ["raw", "tiff_adobe_deflate"])
def test_a_16_bit_tiff_whose_zero_is_white_is_sent_as_it_shows(tmp_path, compression):
    """A 16-bit grey TIFF stored MinIsWhite (PhotometricInterpretation 0: 0 is white): Pillow
    inverts such samples at 1 and 8 bits, not at 16, and the page was sent as a negative (and
    drawn as one in the searchable PDF). Now it is stretched the other way round."""
    page = text_page("Zero is white here", (600, 200))
    stored = Image.fromarray((255 - np.asarray(page, dtype=np.uint16)) * 257)
    p = tmp_path / "min-is-white.tif"
    stored.save(p, tiffinfo={262: 0}, compression=compression)
    (sent,) = prepare_file(p, LIMITS).pages
    assert "mode:I;16->L" in sent.transforms
    assert ImageChops.difference(_decode(sent), page).getextrema()[1] <= 1


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")   # Pillow on the damaged one
def test_a_tiff_layout_pillow_cannot_read_is_named_not_called_damaged(tmp_path):
    """A 16-bit grey TIFF with an alpha channel (an image editor's export of a 16-bit master):
    Pillow has no mode for it and cannot identify it, and the rejection said 'its header is
    damaged or cut short; copy or export it again', which gives the same file again. It now
    names the layout and how to save one that is read; a damaged TIFF is still corrupt."""
    page = text_page("Sixteen bit grey and alpha", (300, 100)).convert("LA")
    p = _planar_tiff(tmp_path / "master.tif", page, 16)
    rejected = _reject(p)
    assert rejected.code == "not_an_image", rejected.reason
    assert "2 samples of 16 bits (grey with 1 extra sample" in rejected.reason and "save it as" in rejected.reason
    p.write_bytes(b"II*\x00\xff\xff\xff\x00" + bytes(100))
    assert _reject(p).code == "corrupt"


def test_a_fax_tiff_is_sent_with_square_pixels_and_says_so(tmp_path):
    im = text_page("Fax line one: the shipment leaves on Monday", (1728, 200), mode="L").convert("1")
    p = tmp_path / "fax.tif"
    im.save(p, compression="group4", dpi=(204, 98))
    (page,) = prepare_file(p, PrecheckLimits()).pages
    assert "square_pixels:1.0000x2.0800" in page.transforms and (page.width, page.height) == (1728, 416)
    q = tmp_path / "fine.tif"
    im.save(q, compression="group4", dpi=(204, 196))
    (page,) = prepare_file(q, PrecheckLimits()).pages
    assert not any(t.startswith("square_pixels") for t in page.transforms) and page.height == 200
