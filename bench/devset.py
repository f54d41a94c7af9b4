"""A synthetic development set: pages of known text and known reading order, by class of layout.

Why it exists: the reading order was once tuned on the 29 scribe pages alone and then doubled the
error on receipts nobody had tried. Tuning on *classes* of layout needs many pages of each class;
rendering them gives unlimited pages whose every line, box and place in the order is known.

Classes (``CLASSES``; ``SINGLE_COLUMN`` marks those read row by row, label then value):

* ``receipt``  - narrow till slip: centred header, item label left and price right, totals;
* ``invoice``  - letterhead, key/value header, a 4-column item table, right-aligned totals;
* ``form``     - sections of ``label  value`` fields, some rows holding two fields;
* ``kvlist``   - a long key/value list (a spec sheet, a catalogue card);
* ``table``    - a ruled-less grid of 3-6 columns, header row first;
* ``article2`` / ``article3`` - a title over two / three text columns on one baseline grid
  (the hard case: their lines pair up row by row as a receipt's do), page number below;
* ``mixed``    - title, full-width paragraph, two text columns, then a key/value block.

Pages are drawn with Pillow in fonts from Debian's ``fonts-dejavu`` and ``fonts-liberation``
(``FONT_DIRS``), then made scan-like: a small skew, blur, grain and JPEG artefacts. Each page
carries its lines in reading order with their boxes in the final image (skew included), so
``tests/test_layout.py`` checks the order on the boxes alone and ``bench/ocr_engines.py`` scores
real OCR against the text. Everything follows from ``(class, seed)``: the same call gives the
same page on every machine with the same fonts.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
SANS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "DejaVuSansCondensed.ttf")
SERIF = ("DejaVuSerif.ttf", "LiberationSerif-Regular.ttf")
MONO = ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf")
BOLD = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "LiberationSerif-Bold.ttf")

CLASSES = ("receipt", "invoice", "form", "kvlist", "table", "article2", "article3", "mixed")
SINGLE_COLUMN = frozenset({"receipt", "invoice", "form", "kvlist", "table"})

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her all she there would their we him been has when who will more no if out so said what up its about "
    "into than them can only other new some could time these two may then do first any my now such like our over "
    "man me even most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year off come since "
    "against go came right used take three archive letter record survey council parish register volume folio "
    "minutes report estate county library museum collection shipment harbour railway district committee treasury"
).split()
ITEMS = ("Milk 1L", "Bread", "Butter", "Coffee beans", "Apples", "Tomatoes", "Cheddar", "Eggs x6", "Rice 2kg",
         "Olive oil", "Pasta", "Yoghurt", "Orange juice", "Tea bags", "Sugar", "Flour", "Salt", "Bananas",
         "Chicken", "Soap", "Batteries AA", "Notebook", "Pencils", "Envelopes", "Stamps", "Candles", "Matches")
KEYS = ("Name", "Surname", "Date of birth", "Place of birth", "Address", "City", "Postcode", "Country", "Phone",
        "Email", "Occupation", "Employer", "Reference", "Account no", "Start date", "End date", "Status",
        "Category", "Shelf mark", "Format", "Extent", "Condition", "Language", "Creator", "Publisher", "Rights",
        "Accession", "Location", "Box", "Folder", "Notes", "Checked by")
PLACES = ("Leeds", "Bremen", "Lyon", "Utrecht", "Bergen", "Graz", "Porto", "Turin", "Cork", "Aarhus", "Gdansk")
NAMES = ("Anna Weber", "John Miller", "Marie Dubois", "Peter Jansen", "Clara Rossi", "Tom Hughes", "Eva Novak")


@dataclass(frozen=True)
class DevLine:
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the final image


@dataclass
class DevPage:
    cls: str
    seed: int
    image: Image.Image          # RGB, degraded
    jpeg: bytes                 # the same page as the JPEG an archive scanner would hand over
    lines: list[DevLine]        # in reading order

    @property
    def name(self) -> str:
        return f"{self.cls}_{self.seed:03d}"

    @property
    def gt(self) -> str:
        return "\n".join(line.text for line in self.lines)


def _font_path(name: str) -> str:
    for d in FONT_DIRS:
        p = Path(d) / name
        if p.exists():
            return str(p)
    raise FileNotFoundError(f"font {name} not found in {', '.join(FONT_DIRS)}: apt-get install fonts-dejavu fonts-liberation")


def fonts_available() -> bool:
    """True when the Debian fonts the set is drawn in are installed (tests skip otherwise)."""
    try:
        for name in (SANS[0], SERIF[0], MONO[0], BOLD[0], SANS[1], SERIF[1], MONO[1], BOLD[1]):
            _font_path(name)
    except FileNotFoundError:
        return False
    return True


class _Canvas:
    """A white page that remembers every text line drawn on it, in the order it is *read*."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("L", (width, height), 255)
        self.draw = ImageDraw.Draw(self.image)
        self.lines: list[DevLine] = []
        self._fonts: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}

    def font(self, name: str, size: int) -> ImageFont.FreeTypeFont:
        key = (name, size)
        if key not in self._fonts:
            self._fonts[key] = ImageFont.truetype(_font_path(name), size)
        return self._fonts[key]

    def text(self, x: float, y: float, text: str, font, anchor: str = "ls") -> DevLine:
        """Draw ``text`` with its baseline at ``y`` (``anchor`` as Pillow's); returns its line."""
        self.draw.text((x, y), text, font=font, fill=random.randint(0, 60), anchor=anchor)
        x0, y0, x1, y1 = self.draw.textbbox((x, y), text, font=font, anchor=anchor)
        line = DevLine(text, (int(x0), int(y0), int(x1), int(y1)))
        self.lines.append(line)
        return line

    def width_of(self, text: str, font) -> float:
        return font.getlength(text)


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice((".", ".", ".", ",", ";"))


def _wrap(rng: random.Random, canvas: _Canvas, font, width: float, words: int) -> list[str]:
    """A paragraph of about ``words`` words wrapped to ``width`` pixels."""
    tokens = " ".join(_sentence(rng, rng.randint(6, 14)) for _ in range(max(1, words // 10))).split()
    lines, cur = [], ""
    for tok in tokens:
        cand = f"{cur} {tok}".strip()
        if cur and canvas.width_of(cand, font) > width:
            lines.append(cur)
            cur = tok
        else:
            cur = cand
    if cur:
        lines.append(cur)
    return lines


def _money(rng: random.Random, low: float = 0.5, high: float = 60.0) -> str:
    return f"{rng.uniform(low, high):.2f}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1990, 2026)}"


def _value(rng: random.Random, key: str) -> str:
    if "date" in key.lower() or key in ("Start date", "End date"):
        return _date(rng)
    if key in ("Name", "Creator", "Checked by"):
        return rng.choice(NAMES)
    if key in ("City", "Place of birth", "Location"):
        return rng.choice(PLACES)
    if key in ("Phone", "Account no", "Reference", "Accession", "Postcode"):
        return f"{rng.randint(10, 99)}-{rng.randint(1000, 99999)}"
    if key == "Email":
        return f"{rng.choice(WORDS)}.{rng.choice(WORDS)}@example.org"
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))).capitalize()


# --------------------------------------------------------------------------------------------
# One drawing function per class; each draws its lines in reading order.


def _receipt(rng: random.Random) -> _Canvas:
    w = rng.choice((560, 600, 640))
    items = rng.randint(8, 18)
    c = _Canvas(w, 420 + items * 60)
    mono = rng.random() < 0.6
    size = rng.randint(20, 24)
    f = c.font(rng.choice(MONO) if mono else rng.choice(SANS), size)
    fb = c.font(rng.choice(BOLD), size + 6)
    pitch = int(size * rng.uniform(1.35, 1.7))
    margin = rng.randint(24, 40)
    y = 50
    c.text(w / 2, y, rng.choice(("FRESH MARKET", "CORNER STORE", "BOOK & PAPER", "CITY PHARMACY")), fb, "ms")
    y += pitch + 6
    for head in (f"{rng.randint(1, 200)} {rng.choice(WORDS).capitalize()} Street", rng.choice(PLACES),
                 f"Tel {rng.randint(100, 999)} {rng.randint(1000, 9999)}"):
        c.text(w / 2, y, head, f, "ms")
        y += pitch
    y += pitch // 2
    c.text(margin, y, f"Date {_date(rng)}", f)
    c.text(w - margin, y, f"{rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}", f, "rs")
    y += pitch * 2
    for _ in range(items):
        c.text(margin, y, rng.choice(ITEMS), f)
        c.text(w - margin, y, _money(rng), f, "rs")
        y += pitch
        if rng.random() < 0.2:
            c.text(margin + 2 * size, y, f"{rng.randint(2, 5)} x {_money(rng, 0.5, 5)}", f)
            y += pitch
    y += pitch // 2
    for label in ("SUBTOTAL", "TAX 7%", "TOTAL", "CASH", "CHANGE"):
        c.text(margin, y, label, fb if label == "TOTAL" else f)
        c.text(w - margin, y, _money(rng, 5, 300), fb if label == "TOTAL" else f, "rs")
        y += pitch + (6 if label == "TOTAL" else 0)
    y += pitch
    c.text(w / 2, y, rng.choice(("Thank you for shopping", "Please keep your receipt", "Have a nice day")), f, "ms")
    c.image = c.image.crop((0, 0, w, int(y + 50)))
    return c


def _a4(rng: random.Random) -> tuple[_Canvas, int, int]:
    w, h = 1240, 1754
    return _Canvas(w, h), rng.randint(90, 140), w


def _faces(c: _Canvas, rng: random.Random, size: int, families, title_extra: int,
           spacing: tuple[float, float]):
    """A page's body font, its bold title font (``title_extra`` px larger) and its line pitch."""
    f, fb = c.font(rng.choice(families), size), c.font(rng.choice(BOLD), size + title_extra)
    return f, fb, int(size * rng.uniform(*spacing))


def _kv_rows(c: _Canvas, rng: random.Random, f, x_key: float, x_val: float, y: float, pitch: int, keys) -> float:
    for key in keys:
        c.text(x_key, y, key + (":" if rng.random() < 0.5 else ""), f)
        c.text(x_val, y, _value(rng, key), f)
        y += pitch
    return y


def _invoice(rng: random.Random) -> _Canvas:
    c, m, w = _a4(rng)
    size = rng.randint(22, 26)
    f, fb, pitch = _faces(c, rng, size, SANS, 14, (1.4, 1.7))
    y = m + 20
    c.text(m, y, f"{rng.choice(WORDS).capitalize()} & {rng.choice(WORDS).capitalize()} Ltd", fb)
    y += pitch + 16
    for line in (f"{rng.randint(1, 99)} {rng.choice(WORDS).capitalize()} Road", rng.choice(PLACES)):
        c.text(m, y, line, f)
        y += pitch
    y += pitch
    c.text(m, y, "INVOICE", fb)
    y += pitch + 12
    y = _kv_rows(c, rng, f, m, m + 260, y, pitch, ("Invoice no", "Date", "Due date", "Customer"))
    y += pitch
    cols = (m, w - m - 520, w - m - 300, w - m)  # description left; qty, price, amount right-aligned
    for x, head, anchor in zip(cols, ("Description", "Qty", "Unit price", "Amount"), ("ls", "rs", "rs", "rs")):
        c.text(x, y, head, f, anchor)
    y += pitch + 6
    for _ in range(rng.randint(5, 12)):
        c.text(cols[0], y, " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))).capitalize(), f)
        c.text(cols[1], y, str(rng.randint(1, 40)), f, "rs")
        c.text(cols[2], y, _money(rng, 1, 90), f, "rs")
        c.text(cols[3], y, _money(rng, 10, 900), f, "rs")
        y += pitch
    y += pitch
    for label in ("Subtotal", "VAT 20%", "Total due"):
        c.text(w - m - 420, y, label, f)
        c.text(w - m, y, _money(rng, 50, 5000), f, "rs")
        y += pitch
    y += pitch
    for line in _wrap(rng, c, f, w - 2 * m, rng.randint(18, 30)):
        c.text(m, y, line, f)
        y += pitch
    return c


def _form(rng: random.Random) -> _Canvas:
    c, m, w = _a4(rng)
    size = rng.randint(22, 26)
    f, fb, pitch = _faces(c, rng, size, SANS + SERIF, 8, (1.6, 2.1))
    y = m + 20
    c.text(w / 2, y, rng.choice(("Application form", "Registration of records", "Loan request", "Visitor form")), fb, "ms")
    y += 2 * pitch
    keys = list(KEYS)
    rng.shuffle(keys)
    for section in range(rng.randint(2, 3)):
        c.text(m, y, f"{section + 1}. {rng.choice(('Personal details', 'Item', 'Contact', 'Office use'))}", fb)
        y += pitch + 6
        for _ in range(rng.randint(3, 6)):
            if rng.random() < 0.35:  # two fields on one row: read left field, then right field
                k1, k2 = keys.pop(), keys.pop()
                c.text(m, y, k1, f)
                c.text(m + 230, y, _value(rng, k1), f)
                c.text(w / 2 + 40, y, k2, f)
                c.text(w / 2 + 270, y, _value(rng, k2), f)
            else:
                k = keys.pop()
                c.text(m, y, k, f)
                c.text(m + 230, y, _value(rng, k), f)
            y += pitch
        y += pitch // 2
    c.text(m, y + pitch, "Signature", f)
    c.text(w / 2 + 40, y + pitch, "Date", f)
    c.text(w / 2 + 270, y + pitch, _date(rng), f)
    return c


def _kvlist(rng: random.Random) -> _Canvas:
    c, m, w = _a4(rng)
    size = rng.randint(20, 26)
    f, fb, pitch = _faces(c, rng, size, SANS + SERIF + MONO, 8, (1.35, 1.8))
    y = m + 20
    c.text(m, y, rng.choice(("Catalogue record", "Item description", "Specification", "Finding aid entry")), fb)
    y += 2 * pitch
    keys = list(KEYS)
    rng.shuffle(keys)
    _kv_rows(c, rng, f, m, m + rng.randint(260, 380), y, pitch, keys[: rng.randint(14, 26)])
    return c


def _table(rng: random.Random) -> _Canvas:
    c, m, w = _a4(rng)
    size = rng.randint(20, 24)
    f, fb, pitch = _faces(c, rng, size, SANS + SERIF, 8, (1.4, 1.9))
    ncols = rng.randint(3, 6)
    y = m + 20
    c.text(m, y, f"Table {rng.randint(1, 9)}. {_sentence(rng, rng.randint(3, 6))}", fb)
    y += 2 * pitch
    span = (w - 2 * m) / ncols
    kinds = ["text"] + [rng.choice(("num", "num", "date", "text")) for _ in range(ncols - 1)]
    heads = [rng.choice(WORDS).capitalize() for _ in range(ncols)]

    def cell(kind: str) -> str:
        if kind == "num":
            return str(rng.randint(1, 9999)) if rng.random() < 0.5 else _money(rng, 1, 999)
        if kind == "date":
            return _date(rng)
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 2))).capitalize()

    for r in range(rng.randint(8, 20)):
        for k in range(ncols):
            text = heads[k] if r == 0 else cell(kinds[k])
            if kinds[k] == "num":
                c.text(m + (k + 1) * span - 16, y, text, f, "rs")
            else:
                c.text(m + k * span, y, text, f)
        y += pitch + (8 if r == 0 else 0)
    y += pitch
    c.text(m, y, f"Source: {rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randint(1850, 2020)}.", f)
    return c


def _columns(c: _Canvas, rng: random.Random, f, x0: float, x1: float, y0: float, y1: float, ncols: int,
             pitch: int, gutter: float) -> float:
    """Text columns on one baseline grid between y0 and y1, filled column by column; returns the last y."""
    colw = (x1 - x0 - (ncols - 1) * gutter) / ncols
    last = y0
    for k in range(ncols):
        x, y = x0 + k * (colw + gutter), y0
        while y < y1 - pitch:
            para = _wrap(rng, c, f, colw, rng.randint(25, 70))
            for line in para:
                if y >= y1:
                    break
                c.text(x, y, line, f)
                y += pitch
            y += pitch  # one blank line between paragraphs keeps the grid
        last = max(last, y)
    return last


def _article(rng: random.Random, ncols: int) -> _Canvas:
    c, m, w = _a4(rng)
    size = rng.randint(18, 22) if ncols == 3 else rng.randint(20, 24)
    f, fb, pitch = _faces(c, rng, size, SERIF + SANS, 14, (1.25, 1.45))
    y = m + 30
    c.text(w / 2, y, _sentence(rng, rng.randint(3, 6)).rstrip(".,;"), fb, "ms")
    y += 2 * pitch + 10
    _columns(c, rng, f, m, w - m, y, 1754 - m - 3 * pitch, ncols, pitch, rng.randint(40, 70))
    c.text(w / 2, 1754 - m, str(rng.randint(2, 300)), f, "ms")
    return c


def _mixed(rng: random.Random) -> _Canvas:
    c, m, w = _a4(rng)
    size = rng.randint(20, 24)
    f, fb, pitch = _faces(c, rng, size, SERIF + SANS, 12, (1.25, 1.45))
    y = m + 30
    c.text(m, y, _sentence(rng, rng.randint(3, 6)).rstrip(".,;"), fb)
    y += 2 * pitch
    for line in _wrap(rng, c, f, w - 2 * m, rng.randint(40, 70)):
        c.text(m, y, line, f)
        y += pitch
    y += pitch
    y = _columns(c, rng, f, m, w - m, y, y + rng.randint(14, 22) * pitch, 2, pitch, rng.randint(40, 70))
    y += pitch
    keys = list(KEYS)
    rng.shuffle(keys)
    _kv_rows(c, rng, f, m, m + 300, y, pitch, keys[: rng.randint(4, 8)])
    return c


_DRAW = {"receipt": _receipt, "invoice": _invoice, "form": _form, "kvlist": _kvlist, "table": _table,
         "article2": lambda rng: _article(rng, 2), "article3": lambda rng: _article(rng, 3), "mixed": _mixed}


# --------------------------------------------------------------------------------------------
# Scan-like degradation


def _rotate_box(box, angle_deg: float, cx: float, cy: float) -> tuple[int, int, int, int]:
    """Bounds of ``box`` after Pillow's ``rotate(angle_deg)`` about (cx, cy) (counter-clockwise)."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    xs, ys = [], []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
        dx, dy = x - cx, y - cy
        xs.append(cx + dx * cos + dy * sin)
        ys.append(cy - dx * sin + dy * cos)
    return (int(min(xs)), int(min(ys)), int(math.ceil(max(xs))), int(math.ceil(max(ys))))


def _degrade(rng: random.Random, image: Image.Image, lines: list[DevLine], clean: bool
             ) -> tuple[Image.Image, bytes, list[DevLine]]:
    if clean:
        rgb = image.convert("RGB")
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=95)
        return rgb, buf.getvalue(), lines
    angle = rng.uniform(-0.6, 0.6)
    cx, cy = image.width / 2, image.height / 2
    image = image.rotate(angle, resample=Image.BICUBIC, center=(cx, cy), fillcolor=255)
    lines = [DevLine(ln.text, _rotate_box(ln.box, angle, cx, cy)) for ln in lines]
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    # grain around 128, seeded from the page's rng (Image.effect_noise is unseeded: pixels varied per run)
    grain = np.random.default_rng(rng.getrandbits(64)).normal(128.0, rng.uniform(8, 22), (image.height, image.width))
    noise = Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8), "L")
    image = Image.blend(image, noise, rng.uniform(0.05, 0.12))
    lo, hi = rng.randint(0, 30), rng.randint(225, 255)
    image = image.point(lambda v: lo + v * (hi - lo) // 255)  # paper tone and ink not quite black/white
    rgb = image.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=rng.randint(40, 80))
    data = buf.getvalue()
    return Image.open(io.BytesIO(data)).convert("RGB"), data, lines


def page(cls: str, seed: int, clean: bool = False) -> DevPage:
    """One page of class ``cls``: the same ``(cls, seed)`` always gives the same page."""
    if cls not in _DRAW:
        raise ValueError(f"unknown page class {cls!r}; choose one of {', '.join(CLASSES)}")
    rng = random.Random(f"{cls}:{seed}")
    state = random.getstate()
    random.seed(f"ink:{cls}:{seed}")  # ink shades in _Canvas.text
    try:
        canvas = _DRAW[cls](rng)
    finally:
        random.setstate(state)
    image, data, lines = _degrade(rng, canvas.image, canvas.lines, clean)
    return DevPage(cls=cls, seed=seed, image=image, jpeg=data, lines=lines)


def pages(per_class: int, classes=CLASSES, first_seed: int = 0, clean: bool = False) -> list[DevPage]:
    """``per_class`` pages of each class, seeds ``first_seed ..``."""
    return [page(cls, s, clean) for cls in classes for s in range(first_seed, first_seed + per_class)]


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.devset OUT [--per-class N]``: write the pages (JPEG + GT text) to look at."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--classes", nargs="*", default=list(CLASSES), choices=list(CLASSES))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for p in pages(args.per_class, args.classes):
        (args.out / f"{p.name}.jpg").write_bytes(p.jpeg)
        (args.out / f"{p.name}.gt.txt").write_text(p.gt + "\n", encoding="utf-8")
    print(f"wrote {args.per_class * len(args.classes)} pages to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
