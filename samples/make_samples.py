"""Generate the project's sample scans (deterministic; run from anywhere: ``python samples/make_samples.py``).

The samples are made by the project itself (no third-party scans), small enough to commit
(< 1 MB in total), and chosen to exercise the input side: nested folders, a folder name with a
space, PNG and JPEG pages, a photo stored sideways that only EXIF orientation makes upright,
a multi-page TIFF, and a two-page PDF (one born-digital page, one scanned). Text is real English set in DejaVu Serif at ~40 px (cap height ~29 px) on
1240 px wide pages (A4 width at 150 dpi), a size OCR engines such as RapidOCR read reliably.

``SAMPLE_TEXTS`` maps each sample's path (relative to ``samples/``) to the text on each page, so
tests that run real OCR can compare against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
FONT_SIZE = 40
PAGE_WIDTH = 1240
MARGIN = 90
LINE_GAP = 18

SAMPLE_TEXTS: dict[str, list[str]] = {
    "letters/1952/letter-01.png": [
        "Dear Margaret, thank you for your kind letter of the ninth. "
        "The harvest was late this year, but the apples are sweeter than ever. "
        "We hope to visit you in the spring when the roads are dry again."
    ],
    "letters/1952/letter-02.jpg": [
        "The committee met on Tuesday and agreed to repair the old bridge. "
        "Work will begin in April and should be finished before the summer fair."
    ],
    "letters/field notes/notes-03.png": [
        "Field notes, third week. The river rose two feet after the storm. "
        "We counted forty herons along the north bank and one otter near the mill."
    ],
    "photos/sideways-note.jpg": [
        "Please remember to water the plants every morning and to feed the cat twice a day."
    ],
    "reports/report-3pages.tif": [
        "Page one. This report describes the survey of the eastern district in the autumn.",
        "Page two. Most wells were clean, but three of them need new covers before winter.",
        "Page three. We recommend a second visit in March to check the repaired wells.",
    ],
    "reports/minutes-2pages.pdf": [
        "Minutes of the parish council, born digital. The council approved the new school roof "
        "and asked the clerk to write to the county about the road.",
        "Page two was scanned. The treasurer reported that the hall fund now holds enough money "
        "for new chairs and a kettle.",
    ],
}


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    if FONT_PATH.exists():
        return ImageFont.truetype(str(FONT_PATH), size)
    return ImageFont.load_default(size=size)


def _wrap(text: str, font, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if font.getlength(trial) <= width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def render_page(text: str, *, paper=255, ink=20, mode: str = "L") -> Image.Image:
    """A page just tall enough for ``text``: white paper, dark ink, wrapped to the page width."""
    font = _font()
    lines = _wrap(text, font, PAGE_WIDTH - 2 * MARGIN)
    ascent, descent = font.getmetrics()
    line_h = ascent + descent + LINE_GAP
    height = max(2 * MARGIN + len(lines) * line_h, 400)
    page = Image.new(mode, (PAGE_WIDTH, height), paper)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * line_h), line, font=font, fill=ink)
    return page


def _sideways_photo(text: str) -> Image.Image:
    """A colour 'photo' of a note: warm paper with a soft lighting gradient and blue ink."""
    page = render_page(text, paper=(246, 238, 214), ink=(25, 35, 110), mode="RGB")
    w, h = page.size
    shade = Image.linear_gradient("L").resize((w, h)).point(lambda v: 255 - v // 6)
    dark = Image.new("RGB", (w, h), (120, 110, 90))
    return Image.composite(page, dark, shade)


def make_all(root: Path = HERE) -> list[Path]:
    written = []

    def out(rel: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(path)
        return path

    rel = "letters/1952/letter-01.png"
    render_page(SAMPLE_TEXTS[rel][0]).save(out(rel), optimize=True)

    rel = "letters/1952/letter-02.jpg"
    render_page(SAMPLE_TEXTS[rel][0]).save(out(rel), quality=80)

    rel = "letters/field notes/notes-03.png"
    render_page(SAMPLE_TEXTS[rel][0]).save(out(rel), optimize=True)

    # Stored rotated 90° counter-clockwise with Orientation=6 ("rotate 90° CW to display"), as a
    # phone held sideways writes it: only a reader that honours EXIF sees the text upright.
    rel = "photos/sideways-note.jpg"
    upright = _sideways_photo(SAMPLE_TEXTS[rel][0])
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(out(rel), quality=85, exif=exif.tobytes())

    # Bilevel fax-style pages, CCITT Group 4 compressed: tiny, and the commonest archive TIFF.
    rel = "reports/report-3pages.tif"
    pages = [render_page(t).point(lambda v: 255 if v > 128 else 0).convert("1")
             for t in SAMPLE_TEXTS[rel]]
    pages[0].save(out(rel), save_all=True, append_images=pages[1:], compression="group4", dpi=(150, 150))

    rel = "reports/minutes-2pages.pdf"
    _mixed_pdf(SAMPLE_TEXTS[rel], out(rel))
    return written


def _mixed_pdf(texts: list[str], path: Path) -> None:
    """A PDF as offices make them: page 1 born digital (a real text layer, taken without OCR),
    page 2 a scan (an image only, rendered and OCRed). fpdf2 is a test dependency
    (``pip install -e .[test]``); the dates are fixed so the file is byte-for-byte repeatable."""
    from datetime import datetime, timezone

    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))
    pdf.set_font("times", size=16)
    pdf.add_page()
    pdf.set_xy(72, 72)
    pdf.multi_cell(451, 22, texts[0])
    pdf.add_page()
    scan = render_page(texts[1])
    pdf.image(scan, x=36, y=36, w=523)
    pdf.output(str(path))


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else HERE
    total = 0
    for path in make_all(root):
        size = path.stat().st_size
        total += size
        print(f"{size:>9,}  {path.relative_to(root)}")
    print(f"{total:>9,}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
