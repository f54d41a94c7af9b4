"""Turned and skewed page decisions on classes of page the shared scans do not hold.

Why it exists: the straightening (``pipeline.inputs.upright``) was measured on the 38 shared
scans and the rendered dev set (articles, forms, tables); its promise is that ``auto`` never
turns an upright page (a page turned wrong loses all its text). This renders upright pages of
other classes (``CLASSES``: a title page, an index card, a photo with a caption, a ledger, a
poster, white on black, Cyrillic/Greek/Hebrew/Arabic, a phone list, a blank page, a music
page, ...), several of each, made scan-like in different ways (``_degrade``: grey or yellowed
paper, noise, blur, JPEG, bleed-through, a scanner lid's dark border, punched holes, a staple's
shadow), and runs the decision on each page and on its turned and skewed versions
(``bench.page_variants``), as ``bench.straighten`` does on the scans.

Scripts and hands beyond those (Chinese and Japanese across and in vertical columns, Korean,
Devanagari, Thai, Ethiopic, Fraktur, a handwriting-like hand, a page of mixed scripts) are drawn
in Debian font packages beyond the CI's (``EXTRA_FONTS``; CI installs fonts-wqy-microhei only,
for a Korean test); a class whose font is missing is skipped, its row naming the package.

``python -m bench.unseen_pages [--per-class N] [--classes ...] [--write DIR]`` prints one JSON
line: per class, upright pages moved, turned versions right/left/wrong, skewed right/left/wrong,
and the mean CPU time of the decision on the upright pages. Everything follows from
``(class, seed)`` and the fonts (``fonts-dejavu``, ``fonts-liberation``, ``EXTRA_FONTS``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bench.devset import WORDS, _font_path
from bench.page_variants import all_variants, variant
from bench.straighten import verdict
from pipeline.inputs import upright

SERIF, SANS, MONO = "DejaVuSerif.ttf", "LiberationSans-Regular.ttf", "LiberationMono-Regular.ttf"
BOLD, LSERIF = "DejaVuSans-Bold.ttf", "LiberationSerif-Regular.ttf"

#: fonts beyond the Debian ones the set is drawn in, for the scripts and hands the shared scans
#: and the first 22 classes lack: (file, the Debian package that installs it); a class whose
#: font is missing is skipped with the package named (the bench runs without them)
_FONTS = "/usr/share/fonts"
EXTRA_FONTS = {
    "mincho": (f"{_FONTS}/opentype/ipafont-mincho/ipam.ttf", "fonts-ipafont-mincho"),
    "hei": (f"{_FONTS}/truetype/wqy/wqy-microhei.ttc", "fonts-wqy-microhei"),
    **{key: (f"{_FONTS}/truetype/noto/Noto{face}-Regular.ttf", "fonts-noto-core") for key, face in (
        ("devanagari", "SerifDevanagari"), ("devanagari_sans", "SansDevanagari"), ("thai", "SerifThai"),
        ("thai_looped", "LoopedThai"), ("ethiopic", "SerifEthiopic"), ("ethiopic_sans", "SansEthiopic"))},
    "gamaliel": (f"{_FONTS}/truetype/gamaliel/Gamaliel.ttf", "fonts-gamaliel"),
    "blankenburg": (f"{_FONTS}/truetype/blankenburg/Blankenburg_UNZ1A.ttf", "fonts-blankenburg"),
    "hand": (f"{_FONTS}/truetype/fifthhorseman/dkg.ttf", "fonts-dkg-handwriting"),
    "humor": (f"{_FONTS}/truetype/humor-sans/Humor-Sans.ttf", "fonts-humor-sans"),
}

SCRIPTS = {
    "cyrillic": ("В начале года совет приходской управы рассмотрел отчёт о состоянии библиотеки и архива, "
                 "постановил перенести старые книги в новое хранилище, составить опись всех дел и писем, "
                 "поручить секретарю проверить каждую папку и записать, что в ней лежит и откуда она пришла. "),
    "greek": ("Κατά την αρχή του έτους το συμβούλιο της ενορίας εξέτασε την έκθεση για την κατάσταση της "
              "βιβλιοθήκης και του αρχείου, αποφάσισε να μεταφέρει τα παλαιά βιβλία σε νέα αποθήκη και να "
              "καταγράψει όλες τις επιστολές, τους φακέλους και τα έγγραφα που βρίσκονται εκεί. "),
    "hebrew": ("בתחילת השנה דנה מועצת הקהילה בדוח על מצב הספרייה והארכיון, והחליטה להעביר את הספרים הישנים "
               "למחסן חדש, לרשום את כל המכתבים והתיקים, ולבקש מן המזכיר לבדוק כל תיק ולכתוב מה יש בו ומאין בא. "),
    "arabic": ("في بداية العام ناقش مجلس الرعية تقرير حالة المكتبة والأرشيف، وقرر نقل الكتب القديمة إلى مخزن "
               "جديد، وتسجيل جميع الرسائل والملفات، وطلب من الأمين أن يفحص كل ملف ويكتب ما فيه ومن أين جاء. "),
}

#: the same minutes in scripts set without spaces between words (Chinese, Japanese) or with
#: them (Korean, Devanagari, Ethiopic; Thai between phrases only), and German for Fraktur
MORE_SCRIPTS = {
    "chinese": "本年度初，教区委员会审议了关于图书馆和档案馆状况的报告，决定将旧书迁入新的库房，编制所有案卷和信件的目录，"
               "并委托秘书检查每一个文件夹，记录其中的内容及其来源。",
    "chinese_trad": "本年度初，教區委員會審議了關於圖書館和檔案館狀況的報告，決定將舊書遷入新的庫房，編製所有案卷和信件的目錄，"
                    "並委託秘書檢查每一個文件夾，記錄其中的內容及其來源。",
    "japanese": "年の初めに、教区の評議会は図書館と文書館の状態についての報告を検討し、古い本を新しい書庫に移し、"
                "すべての手紙と書類の目録を作り、書記にそれぞれの綴りを調べて、その中身と出所を書き留めるよう頼んだ。",
    "korean": "연초에 교구 위원회는 도서관과 기록 보관소의 상태에 관한 보고서를 검토하고, 오래된 책을 새 서고로 옮기며, "
              "모든 편지와 서류의 목록을 작성하고, 서기에게 각 서류철을 확인하여 그 내용과 출처를 기록하도록 요청하였다. ",
    "devanagari": "वर्ष के आरंभ में परिषद ने पुस्तकालय और अभिलेखागार की स्थिति पर रिपोर्ट पर विचार किया, पुरानी पुस्तकों "
                  "को नए भंडार में ले जाने, सभी पत्रों और फाइलों की सूची बनाने का निर्णय लिया, और सचिव से हर फाइल की "
                  "जांच करके यह लिखने को कहा कि उसमें क्या है और वह कहाँ से आई। ",
    "thai": "เมื่อต้นปี สภาตำบลได้พิจารณารายงานเกี่ยวกับสภาพของห้องสมุดและหอจดหมายเหตุ และมีมติให้ย้ายหนังสือเก่าไปยังคลังใหม่ "
            "จัดทำบัญชีรายชื่อจดหมายและแฟ้มเอกสารทั้งหมด และขอให้เลขานุการตรวจสอบแฟ้มทุกแฟ้ม แล้วบันทึกว่าในแฟ้มมีอะไรและมาจากที่ใด ",
    "ethiopic": "በዓመቱ መጀመሪያ ላይ የደብሩ ምክር ቤት ስለ ቤተ መጻሕፍቱና ስለ መዛግብቱ ሁኔታ የቀረበውን ሪፖርት መረመረ፤ አሮጌዎቹን "
                "መጻሕፍት ወደ አዲስ መጋዘን ለማዛወር፣ የሁሉንም ደብዳቤዎችና ማህደሮች ዝርዝር ለማዘጋጀት ወሰነ፤ ጸሐፊውም "
                "እያንዳንዱን ማህደር መርምሮ ምን እንዳለበትና ከየት እንደመጣ እንዲጽፍ ጠየቀ። ",
    "fraktur": "Im Anfange des Jahres berieth der Gemeinderath über den Bericht vom Zustande der Bibliothek und des "
               "Archivs, beschloß die alten Bücher in das neue Gewölbe zu schaffen, ein Verzeichniß aller Acten und "
               "Briefe anzulegen und den Schreiber zu beauftragen, jede Mappe zu prüfen und aufzuschreiben, was "
               "darin liegt und woher sie gekommen ist. ",
}


class MissingFont(Exception):
    """A class's font is not installed (the message names the Debian package)."""


class _Page:
    """A white page (``L``) and its fonts."""

    def __init__(self, w: int, h: int, rng: random.Random, ground: int = 255) -> None:
        self.im = Image.new("L", (w, h), ground)
        self.draw = ImageDraw.Draw(self.im)
        self.rng = rng
        self.w, self.h = w, h

    @staticmethod
    def font(name: str, size: int) -> ImageFont.FreeTypeFont:
        if name in EXTRA_FONTS:
            path, package = EXTRA_FONTS[name]
            if not Path(path).exists():
                raise MissingFont(f"{path} missing: apt-get install {package}")
            return ImageFont.truetype(path, size)
        return ImageFont.truetype(_font_path(name), size)

    def words(self, n: int) -> str:
        out = [self.rng.choice(WORDS) for _ in range(n)]
        out[0] = out[0].capitalize()
        return " ".join(out)

    def paragraph(self, x0: int, y0: int, width: int, font, lines: int, text: str | None = None,
                  lead: float = 1.45, fill: int = 20, direction: str | None = None) -> int:
        """``lines`` lines of running text wrapped to ``width`` from (x0, y0); the y below them."""
        tokens = (text * 20).split() if text else " ".join(self.words(12) + "." for _ in range(lines * 2)).split()
        pitch = int(font.size * lead)
        y, i = y0, 0
        for n in range(lines):
            cur = ""
            while i < len(tokens) and (not cur or font.getlength(f"{cur} {tokens[i]}") <= width):
                cur = f"{cur} {tokens[i]}".strip()
                i += 1
            if direction == "rtl":
                self.draw.text((x0 + width, y), cur, font=font, fill=fill, anchor="rs", direction="rtl")
            else:
                self.draw.text((x0, y), cur, font=font, fill=fill, anchor="ls")
            y += pitch
        return y

    def chars(self, x0: int, y0: int, width: int, font, lines: int, text: str, lead: float = 1.6) -> int:
        """``lines`` lines across of a script set without spaces (Chinese, Japanese): wrapped
        at any character; the y below them."""
        pitch, y, i = int(font.size * lead), y0, 0
        for _ in range(lines):
            cur = ""
            while font.getlength(cur + text[i % len(text)]) <= width:
                cur += text[i % len(text)]
                i += 1
            self.draw.text((x0, y), cur, font=font, fill=20, anchor="ls")
            y += pitch
        return y

    def columns(self, x1: int, y0: int, height: int, font, columns: int, text: str, lead: float = 1.6) -> None:
        """``columns`` columns of vertical writing (Chinese, Japanese): each character under the
        last, top to bottom, the columns from ``x1`` leftwards (read right to left)."""
        pitch, i = int(font.size * 1.05), 0
        for c in range(columns):
            x = x1 - c * int(font.size * lead)
            for y in range(y0, y0 + height - pitch, pitch):
                ch = text[i % len(text)]
                i += 1
                if ch in "、。，":      # set in the cell's top right corner, as vertical type does
                    self.draw.text((x + font.size // 4, y + pitch // 4), ch, font=font, fill=20, anchor="mm")
                else:
                    self.draw.text((x, y), ch, font=font, fill=20, anchor="mt")


def _a4(rng: random.Random, landscape: bool = False) -> tuple[int, int]:
    w, h = rng.choice(((1700, 2200), (2480, 3508), (2550, 3300)))
    return (h, w) if landscape else (w, h)


def _title(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice((SERIF, BOLD, LSERIF)), p.w // 22)
    y = p.h // 3
    for text in (p.words(3).upper(), p.words(4), str(rng.randint(1850, 1990))):
        p.draw.text((p.w // 2, y), text, font=f, fill=15, anchor="ms")
        y += int(f.size * 2.2)
    return p.im


def _index_card(rng):
    p = _Page(rng.choice((2000, 1800)), rng.choice((1200, 1080)), rng)
    for y in range(260, p.h - 40, 90):
        p.draw.line((0, y, p.w, y), fill=200, width=3)
    p.draw.line((0, 170, p.w, 170), fill=150, width=4)
    f = p.font(MONO, 44)
    p.draw.text((80, 150), p.words(3).upper() + f"  No. {rng.randint(100, 999)}", font=f, fill=25, anchor="ls")
    for k, y in enumerate(range(250, p.h - 200, 90)):
        p.draw.text((80, y), p.words(rng.randint(3, 7)), font=f, fill=25, anchor="ls")
    return p.im


def _paragraph(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice((SERIF, LSERIF, SANS)), p.w // 60)
    p.paragraph(p.w // 8, p.h // 4, p.w * 3 // 4, f, rng.randint(8, 12))
    return p.im


def _photo(rng):
    p = _Page(*_a4(rng), rng)
    w, h = p.w * 4 // 5, p.h * 3 // 5
    g = np.random.default_rng(rng.getrandbits(32))
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 120.0)
    for _ in range(12):   # soft blobs: a landscape, faces, sky
        cx, cy, r = g.uniform(0, w), g.uniform(0, h), g.uniform(w / 12, w / 3)
        img += g.uniform(-90, 90) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    img += g.normal(0, 12, (h, w))
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(2))
    x0, y0 = (p.w - w) // 2, p.h // 8
    p.im.paste(photo, (x0, y0))
    f = p.font(LSERIF, p.w // 60)
    p.paragraph(x0, y0 + h + f.size * 2, w, f, 2)
    return p.im


def _drawing(rng):
    p = _Page(*_a4(rng), rng)
    x0, y0, x1, y1 = p.w // 8, p.h // 10, p.w * 7 // 8, p.h * 2 // 3
    for _ in range(25):
        kind = rng.random()
        a, b = rng.randint(x0, x1), rng.randint(y0, y1)
        r = rng.randint(p.w // 40, p.w // 6)
        if kind < 0.4:
            p.draw.ellipse((a - r, b - r, a + r, b + r), outline=30, width=4)
        elif kind < 0.7:
            p.draw.line((a, b, rng.randint(x0, x1), rng.randint(y0, y1)), fill=30, width=4)
        else:
            p.draw.polygon([(a + r * math.cos(t), b + r * math.sin(t)) for t in np.linspace(0, 6.28, 6)[:-1]],
                           outline=30, width=4)
    f = p.font(LSERIF, p.w // 55)
    p.draw.text((p.w // 2, y1 + f.size * 3), "Fig. " + str(rng.randint(1, 40)) + ". " + p.words(6),
                font=f, fill=20, anchor="ms")
    return p.im


def _numbers(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice((MONO, SANS)), p.w // 70)
    cols, rows = rng.randint(5, 8), rng.randint(25, 40)
    cw = (p.w * 8 // 10) // cols
    pitch = (p.h * 8 // 10) // rows
    for r in range(rows):
        for c in range(cols):
            n = f"{rng.uniform(0, 99999):.2f}" if c else str(1900 + r)
            p.draw.text((p.w // 10 + (c + 1) * cw - 20, p.h // 10 + r * pitch), n, font=f, fill=20, anchor="rs")
    return p.im


def _ledger(rng):
    p = _Page(*_a4(rng, landscape=rng.random() < 0.5), rng)
    pitch = p.h // 40
    for y in range(p.h // 10, p.h * 19 // 20, pitch):
        p.draw.line((p.w // 20, y, p.w * 19 // 20, y), fill=140, width=2)
    for x in (0.05, 0.15, 0.6, 0.75, 0.85, 0.95):
        p.draw.line((int(x * p.w), p.h // 12, int(x * p.w), p.h * 19 // 20), fill=90, width=3)
    f = p.font(rng.choice((SERIF, LSERIF)), int(pitch * 0.55))
    for k in range(rng.randint(8, 25)):
        y = p.h // 10 + (k + 1) * pitch - 6
        p.draw.text((int(0.06 * p.w), y), f"{rng.randint(1, 28)} {rng.choice(('Jan', 'Feb', 'Mar'))}",
                    font=f, fill=30, anchor="ls")
        p.draw.text((int(0.16 * p.w), y), p.words(rng.randint(2, 5)), font=f, fill=30, anchor="ls")
        p.draw.text((int(0.74 * p.w), y), f"{rng.randint(1, 400)}", font=f, fill=30, anchor="rs")
        p.draw.text((int(0.84 * p.w), y), f"{rng.randint(0, 19)}", font=f, fill=30, anchor="rs")
    return p.im


def _landscape(rng):
    p = _Page(*_a4(rng, landscape=True), rng)
    f = p.font(rng.choice((SERIF, SANS)), p.h // 55)
    p.paragraph(p.w // 12, p.h // 8, p.w * 5 // 6, f, 24)
    return p.im


def _spread(rng):
    w, h = rng.choice(((3400, 2200), (3300, 2300)))
    p = _Page(w, h, rng)
    f = p.font(rng.choice((SERIF, LSERIF)), h // 60)
    for x0 in (w // 20, w // 2 + w // 20):
        p.paragraph(x0, h // 10, w * 8 // 20, f, 38)
    arr = np.asarray(p.im, dtype=np.float64)
    xs = np.arange(w) - w / 2
    arr = arr * (1 - 0.6 * np.exp(-(xs ** 2) / (2 * 30.0 ** 2)))[None, :]   # the gutter's shadow
    return Image.fromarray(arr.astype(np.uint8), "L")


def _poster(rng):
    p = _Page(*_a4(rng), rng)
    y = p.h // 5
    for size, n in ((p.w // 7, 1), (p.w // 9, 2), (p.w // 14, 3), (p.w // 30, 6)):
        f = p.font(BOLD, size)
        text = p.words(n).upper() if size > p.w // 20 else p.words(n)
        while f.getlength(text) > p.w * 0.9 and " " in text:
            text = text.rsplit(" ", 1)[0]
        p.draw.text((p.w // 2, y), text, font=f, fill=10, anchor="ms")
        y += int(size * 1.6)
    return p.im


def _small(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice((SANS, LSERIF)), max(14, p.w // 150))
    p.paragraph(p.w // 12, p.h // 12, p.w * 5 // 6, f, int(p.h * 0.8 / (f.size * 1.3)), lead=1.3)
    return p.im


def _inverse(rng):
    p = _Page(*_a4(rng), rng, ground=15)
    f = p.font(rng.choice((SANS, BOLD)), p.w // 45)
    p.paragraph(p.w // 10, p.h // 8, p.w * 4 // 5, f, rng.randint(8, 25), fill=240)
    return p.im


def _narrow(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice((SERIF, SANS)), p.w // 65)
    x0 = p.w // 14 if rng.random() < 0.5 else p.w * 2 // 3
    p.paragraph(x0, p.h // 10, p.w // 4, f, rng.randint(20, 45))
    return p.im


def _margin_note(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(LSERIF, p.w // 60)
    p.paragraph(p.w // 6, p.h // 10, p.w * 2 // 3, f, rng.randint(6, 20))
    note = p.words(rng.randint(4, 8)).upper()
    fn = p.font(BOLD, p.w // 40)
    strip = Image.new("L", (int(fn.getlength(note)) + 20, fn.size * 2), 255)
    ImageDraw.Draw(strip).text((10, fn.size * 1.5), note, font=fn, fill=20, anchor="ls")
    strip = strip.rotate(90, expand=True)   # reads bottom to top, as a spine label
    p.im.paste(strip, (p.w // 25, p.h // 4))
    return p.im


def _script(name, fonts=("DejaVuSerif.ttf", "DejaVuSans.ttf")):
    def draw(rng):
        p = _Page(*_a4(rng), rng)
        f = p.font(rng.choice(fonts), p.w // 55)
        lines = rng.randint(12, 30)
        p.paragraph(p.w // 10, p.h // 10, p.w * 4 // 5, f, lines, text={**SCRIPTS, **MORE_SCRIPTS}[name],
                    direction="rtl" if name in ("hebrew", "arabic") else None)
        return p.im
    return draw


def _cjk(name, font, vertical=False):
    """Chinese or Japanese running text, in lines across or in vertical columns."""
    def draw(rng):
        p = _Page(*_a4(rng), rng)
        f = p.font(font, p.w // rng.choice((40, 50)))
        if vertical:
            columns = rng.randint(8, int(p.w * 0.8 / (f.size * 1.6)))
            p.columns(p.w * 9 // 10 - f.size // 2, p.h // 10, p.h * 8 // 10, f, columns, MORE_SCRIPTS[name])
        else:
            p.chars(p.w // 10, p.h // 10, p.w * 4 // 5, f, rng.randint(12, 30), MORE_SCRIPTS[name])
        return p.im
    return draw


def _handwriting(rng):
    """Lines in a handwriting-like font, each word a little off the line and each line a little
    off level (a hand's lines are neither straight nor parallel)."""
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice(("hand", "humor")), p.w // 45)
    pitch = int(f.size * 1.9)
    for y in range(p.h // 8, p.h * rng.choice((5, 8)) // 10, pitch):
        x, slope = p.w // 10, rng.uniform(-0.012, 0.012)
        for word in p.words(rng.randint(6, 12)).split():
            if x + f.getlength(word) > p.w * 9 // 10:
                break
            p.draw.text((x, y + slope * (x - p.w // 10) + rng.randint(-3, 3)), word, font=f, fill=35, anchor="ls")
            x += int(f.getlength(word + " ")) + rng.randint(-4, 10)
    return p.im


def _mixed(rng):
    """A catalogue page: each entry's Latin line over its original in another script (Chinese,
    Japanese, Korean, Cyrillic, Greek), as a library's accession list of foreign books."""
    p = _Page(*_a4(rng), rng)
    size = p.w // 60
    latin, cjk, other = p.font(LSERIF, size), p.font("hei", size), p.font(SERIF, size)
    y = p.h // 10
    while y < p.h * 9 // 10:
        p.draw.text((p.w // 10, y), f"{rng.randint(100, 9999)}. " + p.words(rng.randint(4, 9)), font=latin,
                    fill=20, anchor="ls")
        y += int(size * 1.5)
        name = rng.choice(("chinese", "japanese", "korean", "cyrillic", "greek"))
        text = {**SCRIPTS, **MORE_SCRIPTS}[name]
        start = rng.randint(0, len(text) // 2)
        font = cjk if name in ("chinese", "japanese", "korean") else other
        line = text[start:]
        while font.getlength(line) > p.w * 0.7:
            line = line[: len(line) * 9 // 10]
        p.draw.text((p.w // 10 + size * 2, y), line, font=font, fill=20, anchor="ls")
        y += int(size * 2.4)
    return p.im


def _phones(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(rng.choice((MONO, SANS)), p.w // 55)
    pitch = int(f.size * 1.7)
    for c in (p.w // 10, p.w // 2 + p.w // 20):
        for y in range(p.h // 10, p.h * 9 // 10, pitch):
            p.draw.text((c, y), f"{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                        font=f, fill=20, anchor="ls")
    return p.im


def _blank(rng):
    p = _Page(*_a4(rng), rng)
    if rng.random() < 0.5:   # a page number only
        f = p.font(LSERIF, p.w // 60)
        p.draw.text((p.w // 2, p.h * 15 // 16), f"- {rng.randint(2, 400)} -", font=f, fill=20, anchor="ms")
    return p.im


def _music(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(SERIF, p.w // 40)
    p.draw.text((p.w // 2, p.h // 14), p.words(3).title(), font=f, fill=15, anchor="ms")
    gap = p.h // 160
    for top in range(p.h // 8, p.h * 9 // 10, gap * 14):
        for k in range(5):
            p.draw.line((p.w // 12, top + k * gap, p.w * 11 // 12, top + k * gap), fill=30, width=3)
        for x in range(p.w // 8, p.w * 11 // 12 - gap, p.w // 18):
            y = top + rng.randint(-2, 10) * gap // 2
            p.draw.ellipse((x, y - gap // 2, x + int(gap * 1.3), y + gap // 2), fill=20)
            p.draw.line((x + int(gap * 1.3), y, x + int(gap * 1.3), y - 3 * gap), fill=20, width=3)
    return p.im


def _form(rng):
    p = _Page(*_a4(rng), rng)
    f = p.font(SANS, p.w // 80)
    pitch = p.h // 30
    for k, y in enumerate(range(p.h // 8, p.h * 9 // 10, pitch)):
        label = p.words(rng.randint(1, 2)).title() + ":"
        p.draw.text((p.w // 10, y), label, font=f, fill=25, anchor="ls")
        p.draw.line((p.w // 10 + int(f.getlength(label)) + 20, y + 4, p.w * 9 // 10, y + 4), fill=60, width=3)
    return p.im


CLASSES = {
    "title": _title, "index_card": _index_card, "paragraph": _paragraph, "photo": _photo,
    "drawing": _drawing, "numbers": _numbers, "ledger": _ledger, "landscape": _landscape,
    "spread": _spread, "poster": _poster, "small_type": _small, "inverse": _inverse,
    "narrow_column": _narrow, "margin_note": _margin_note,
    **{name: _script(name) for name in SCRIPTS},
    "phone_list": _phones, "blank": _blank, "music": _music, "form_lines": _form,
    # scripts and layouts of 2026-12-07's tour, in fonts the CI does not install (EXTRA_FONTS)
    "chinese": _cjk("chinese", "hei"), "japanese": _cjk("japanese", "mincho"),
    "japanese_vertical": _cjk("japanese", "mincho", vertical=True),
    "chinese_vertical": _cjk("chinese_trad", "hei", vertical=True),
    "korean": _script("korean", ("hei",)), "devanagari": _script("devanagari", ("devanagari", "devanagari_sans")),
    "thai": _script("thai", ("thai", "thai_looped")), "ethiopic": _script("ethiopic", ("ethiopic", "ethiopic_sans")),
    "fraktur": _script("fraktur", ("gamaliel", "blankenburg")), "handwriting": _handwriting,
    "mixed_scripts": _mixed,
}


def _degrade(rng: random.Random, im: Image.Image, how: int) -> Image.Image:
    """``how`` 0: clean white; 1: grey paper, noise, blur, JPEG, a scanner lid's dark border and
    punched holes; 2: yellowed paper, bleed-through, a staple's shadow, noise, JPEG."""
    if how == 0:
        return im.convert("L")
    g = np.random.default_rng(rng.getrandbits(32))
    ink = np.asarray(im, dtype=np.float64) / 255.0          # 1 paper, 0 ink
    h, w = ink.shape
    if how == 2:   # the other side's print, mirrored and faint
        back = np.asarray(_paragraph(random.Random(rng.random())).resize((w, h)), dtype=np.float64) / 255.0
        ink = ink * (1 - 0.18 * (1 - back[:, ::-1]))
    paper = 205.0 if how == 1 else 235.0
    arr = ink * paper + (1 - ink) * 25.0
    if how == 1:
        side = rng.choice(("right", "bottom", "left"))
        depth = rng.randint(w // 40, w // 15)
        if side == "right":
            arr[:, w - depth:] = 20.0
        elif side == "bottom":
            arr[h - depth:, :] = 20.0
        else:
            arr[:, :depth] = 20.0
        r = w // 70
        for cy in (h // 4, h // 2, 3 * h // 4)[: rng.choice((2, 3))]:
            yy, xx = np.ogrid[-r:r, -r:r]
            cx = depth + w // 25 if side == "left" else w // 25
            arr[cy - r:cy + r, cx - r:cx + r][xx ** 2 + yy ** 2 <= r * r] = 30.0
    else:   # a staple at the top left and its shadow
        x, y, L = w // 20, h // 30, w // 15
        for k in range(L):
            xi, yi = x + k, y + k // 3
            arr[yi:yi + 6, xi:xi + 2] = 40.0
            arr[yi + 6:yi + 14, xi:xi + 2] *= 0.7
    arr += g.normal(0, rng.uniform(5, 12), arr.shape)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if how == 1:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.2)))
    else:
        out = Image.merge("RGB", (out, out.point(lambda v: v * 0.97), out.point(lambda v: v * 0.82)))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(40, 75))
    return Image.open(io.BytesIO(buf.getvalue())).convert(out.mode)


def page(cls: str, seed: int) -> Image.Image:
    """One upright page of class ``cls``; seed 0, 1, 2, ... cycle clean, grey-and-lid, yellowed."""
    rng = random.Random(f"unseen:{cls}:{seed}")
    return _degrade(rng, CLASSES[cls](rng), seed % 3)


def measure_class(cls: str, per_class: int) -> dict:
    """The decisions on ``per_class`` pages of ``cls`` and their variants, and what they cost."""
    row = {"upright_moved": 0, "turned": {"right": 0, "left": 0, "wrong": 0},
           "skewed": {"right": 0, "left": 0, "wrong": 0}, "cpu_ms_upright": 0.0, "misses": []}
    for seed in range(per_class):
        im = page(cls, seed)
        t = time.process_time()
        how = upright.measure(im)
        row["cpu_ms_upright"] += 1000 * (time.process_time() - t) / per_class
        if not how.noop:
            row["upright_moved"] += 1
            row["misses"].append(f"{cls}_{seed}:upright->skew{how.skew:g},turn{how.turn}")
        for kind, amount in all_variants():
            v_im, _ = variant(im, [], kind, amount)
            v_how = upright.measure(v_im)
            v = verdict(kind, amount, v_how)
            row["turned" if kind == "turn" else "skewed"][v] += 1
            if v == "wrong":
                row["misses"].append(f"{cls}_{seed}:{kind}{amount:g}->skew{v_how.skew:g},turn{v_how.turn}")
            v_im.close()
        im.close()
    row["cpu_ms_upright"] = round(row["cpu_ms_upright"], 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=3)
    ap.add_argument("--classes", nargs="*", default=list(CLASSES), choices=list(CLASSES))
    ap.add_argument("--write", type=Path, help="write the upright pages here (PNG) to look at, and stop")
    args = ap.parse_args(argv)
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for cls in args.classes:
            try:
                for seed in range(args.per_class):
                    page(cls, seed).save(args.write / f"{cls}_{seed}.png")
            except MissingFont as e:
                print(f"{cls} skipped: {e}", file=sys.stderr)
        return 0
    result = {"bench": "unseen_pages", "per_class": args.per_class, "classes": {}}
    for cls in args.classes:
        try:
            row = measure_class(cls, args.per_class)
        except MissingFont as e:      # a script's font not installed: the other classes still run
            row = {"skipped": str(e)}
        result["classes"][cls] = row
        print(cls, json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
