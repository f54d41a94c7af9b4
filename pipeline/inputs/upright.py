"""Turned and skewed pages: measure, decide, straighten (``precheck.rotate_pages``/``deskew``).

Why here, before the upload: every engine, ours and the hosted model, reads a page turned by
180 or 270 degrees as noise and scrambles lines skewed by a few degrees (issue 23 measured it);
the one image sent is the one they all read, so it is straightened once, here.

The decision, cheapest first:

1. the page reduced to ``OSD_SIDE`` and then ``ANALYSIS_SIDE`` pixels (``pipeline.inputs.skew``):
   the lines' skew from a projection profile (tens of milliseconds); measured again at
   ``OSD_SIDE`` when there is too little ink at ``ANALYSIS_SIDE`` (very small type);
2. deskew when ``DESKEW_MIN_ANGLE <= |angle|`` and the lines are clear (``MIN_CLARITY``) or
   the profile is clearly spikier at the angle than level (``MIN_GAIN``: tables), and the angle
   is not at the edge of the search (a page of pictures, not lines) nor one straight stroke's
   (``MIN_GAIN_KEPT``: a drawing's long lines);
3. the fast orientation check: lines across the page with clearly more ink above the x-height
   band than below (``ascender_ratio``) on enough lines: the page is upright, done;
4. otherwise Tesseract's orientation detection (``pipeline.ocr.osd``) on the levelled page,
   taken as it is at ``STRONG_CONFIDENCE`` or above; an OSD "upright" below it that the line
   shapes confirm is taken too;
5. otherwise OSD is unsure (charts, sparse tables, pages that are mostly pictures): a few crops
   are read by Tesseract in the four quarter turns (``pipeline.ocr.readturn``) and the turn read
   with clearly the best confidence is taken; when the reading says nothing clear, OSD's turn
   at ``ROTATE_MIN_CONFIDENCE`` or above, checked against the line shapes where they mean
   something (a script OSD names with ascenders: ``ASCENDER_SCRIPTS``); else nothing.

The result is applied as two recorded transforms, ``deskew:A`` (degrees counter-clockwise
about the centre, on a canvas of the page's size, white in the corners) then ``turn:Q`` (a
lossless quarter turn counter-clockwise); ``pipeline.inputs.geometry`` undoes both for every box.
Thresholds and their figures: docs/configuration.md (``precheck.rotate_pages``, ``deskew``).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from pipeline.inputs.geometry import deskew_frame
from pipeline.ocr import osd, readturn
from pipeline.ocr.imaging import flatten_on_white

MODES = ("auto", "off")

#: skews below this are left alone: the engines read them as well as a level page
DESKEW_MIN_ANGLE = 1.0
#: the best axis' profile score over the other's below which the page has no clear lines
MIN_CLARITY = 1.15
#: or else the profile's score at the skew over its score level at least this (upright pages of
#: the shared scans: at most 1.01 beyond 0.1 degree; their skewed versions 1.25-3.5)
MIN_GAIN = 1.2
#: the share of the gain over level (``gain - 1``) that must remain with the profile's highest
#: peak set aside, or the skew is a stroke's or two (a drawing's long lines), not the page's lines:
#: each of a page's N lines holds about 1/N of it (rendered drawings keep -0.77 to 0.36 of it;
#: skewed text, ledgers, staves, title pages of three lines 0.97 or more); unless what remains
#: is still ``MIN_GAIN`` times as spiky at the skew as level (an index card's heavy top rule, a
#: photo's edge, a scanner lid's band hold most of the gain over the lines beside them; drawings
#: keep at most 1.13)
MIN_GAIN_KEPT = 0.5
#: a page with too little ink at ``ANALYSIS_SIDE`` is measured again at ``OSD_SIDE`` when it
#: is at least this long (very small type); ``ascender_ratio``'s line heights (4-80 px) hold
SMALL_TYPE_SIDE = 1500
#: Tesseract OSD confidence needed to turn a page (OCRmyPDF's default is 14; see the docs)
ROTATE_MIN_CONFIDENCE = 2.0
#: OSD confidence taken without the line shapes' agreement (no wrong turn seen at or above it)
STRONG_CONFIDENCE = 10.0
#: below it, the ascender ratio of the turned page must reach this, on at least so many lines
AGREE_RATIO = 1.2
MIN_RATIO_LINES = 5
#: and, short of ``UPRIGHT_RATIO``, the crops must read this many points better in OSD's turn
#: than in the opposite one (``pipeline.ocr.readturn``)
READ_MARGIN = 10.0
#: the scripts OSD names whose letters rise above the x-height more than they hang below it, so
#: that the line shapes can check OSD's turn (Latin pages are also named Cyrillic, even Tamil, by
#: OSD's guess on charts and tables; a page named otherwise below ``STRONG_CONFIDENCE`` is left)
ASCENDER_SCRIPTS = frozenset({"Latin", "Cyrillic", "Greek", "Fraktur"})
#: the fast check: ascender ratio and line count that say "upright" without asking OSD
UPRIGHT_RATIO = 2.0
UPRIGHT_MIN_LINES = 15
#: long side of the page OSD reads (OSD's character shapes need more pixels than the profile)
OSD_SIDE = 1600

_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class Straightening:
    """What to do to a page: ``skew`` degrees counter-clockwise, then ``turn`` (0/90/180/270).
    ``osd_confidence`` is None when OSD was not asked (the fast check, or rotation off);
    ``read`` says the crops were read four ways (``pipeline.ocr.readturn``: OSD was unsure)."""

    skew: float = 0.0
    turn: int = 0
    osd_confidence: float | None = None
    read: bool = False

    @property
    def noop(self) -> bool:
        return not self.skew and not self.turn


NOTHING = Straightening()


def measure(im: Image.Image, rotate_pages: str = "auto", deskew: str = "auto") -> Straightening:
    """Decide how to straighten a decoded page (any mode). Never raises on a page without text:
    a blank page, a photo or a page of noise is left as it is."""
    from pipeline.inputs import skew as profile  # numpy: loaded when a page is first measured

    if rotate_pages != "auto" and deskew != "auto":
        return NOTHING
    flat = flatten_on_white(im) if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info) else im
    big = profile.reduce_gray(flat, OSD_SIDE)
    if flat is not im:
        flat.close()
    try:
        side = profile.ANALYSIS_SIDE     # the line shapes are measured where the profile was
        small = profile.reduce_gray(big, side)
        mask = profile.ink_mask(small)   # one mask for the profile and the fast check
        lie = profile.line_lie(small, mask)
        if lie.ink_points < profile.MIN_INK_POINTS and max(big.size) >= SMALL_TYPE_SIDE:
            # very small type fades to a light grey at 1000 px (no ink by Otsu's contrast) or to
            # a few specks: the page OSD reads, 1.6 times finer, resolves its strokes
            small.close()
            side = OSD_SIDE
            small = big.copy()
            mask = profile.ink_mask(small)
            lie = profile.line_lie(small, mask)
        inside = abs(lie.angle) <= profile.MAX_ANGLE - profile.COARSE_STEP
        clear = lie.clarity >= MIN_CLARITY and inside
        # a table's columns and rules, a multi-column page's gutters also make a profile down the
        # page, so the lines are less clear across; that the profile is much spikier at the angle
        # than level says the lines lie at that angle all the same; unless the lie is one straight
        # stroke's (a drawing's long line: no longer spikier than level once its peak is set aside)
        strokes = (lie.gain_beside_peak - 1.0 < MIN_GAIN_KEPT * (lie.gain - 1.0)
                   and lie.gain_beside_peak < MIN_GAIN)
        level_it = inside and (lie.clarity >= MIN_CLARITY or lie.gain >= MIN_GAIN) and not strokes
        skew = lie.angle if deskew == "auto" and level_it and abs(lie.angle) >= DESKEW_MIN_ANGLE else 0.0
        if rotate_pages != "auto":
            return Straightening(skew, 0)
        if lie.ink_points < profile.MIN_INK_POINTS:   # a few marks, a blank, a photo: nothing to read
            return Straightening(skew, 0)
        if clear and lie.across:
            ratio, lines = profile.ascender_ratio(small, lie.angle, mask)
            if ratio >= UPRIGHT_RATIO and lines >= UPRIGHT_MIN_LINES:
                return Straightening(skew, 0)
        level = _deskewed(big, skew) if skew else big
        try:
            found = osd.detect(level)
            conf = found and round(found.confidence, 2)
            if found is not None and found.confidence >= STRONG_CONFIDENCE:
                return Straightening(skew, found.turn, conf)
            # at the side the profile found the print (not at 1000 px where it had faded: the
            # line shapes of that grey were a few specks, and agreed with a wrong turn of OSD's)
            level_small = profile.reduce_gray(level, side)
            if (found is None or not found.turn) and clear and lie.across:
                ratio, lines = _turned_ratio(level_small, 0)
                if ratio >= AGREE_RATIO and lines >= MIN_RATIO_LINES:   # OSD and the shapes: upright
                    return Straightening(skew, 0, conf)
            reading = readturn.scores(level)
            read = readturn.clear_turn(reading)
            if read is not None:
                return Straightening(skew, read, conf, True)
            if found is None or found.confidence < ROTATE_MIN_CONFIDENCE or not found.turn:
                return Straightening(skew, 0, conf, True)
            return Straightening(skew, _checked_turn(found, level_small, reading), conf, True)
        finally:
            if level is not big:
                level.close()
    finally:
        big.close()


def _checked_turn(found: osd.Orientation, level_small: Image.Image,
                  reading: dict[int, tuple[float, int]]) -> int:
    """OSD's turn below ``STRONG_CONFIDENCE``, checked against the line shapes: once turned, the
    page should have more ink above its lines' x-height than below. The shapes are a Latin cue:
    they are asked only of a page OSD finds in a script of ascenders and descenders
    (``ASCENDER_SCRIPTS``; Hangul and Ethiopic carry more ink below the middle of a line than
    above, and their shapes agreed with OSD's wrong turns: an upright Ethiopic page turned upside
    down at 2.8, Korean pages turned the wrong way round), and they never choose a turn
    themselves (taking the opposite of OSD's turn when they said so turned those Korean pages).
    Shapes that agree only weakly (``AGREE_RATIO`` to ``UPRIGHT_RATIO``: a few lines of lowercase
    words, but also an Ethiopic page OSD named Cyrillic) must have the four-way reading on their
    side too: the turn read ``READ_MARGIN`` points better than its opposite, as Latin text was
    where it came to this step (28-36 points) and a script ``eng`` cannot read is not (0-8)."""
    ratio, lines = _turned_ratio(level_small, found.turn)
    if found.script not in ASCENDER_SCRIPTS or ratio < AGREE_RATIO or lines < MIN_RATIO_LINES:
        return 0
    if ratio >= UPRIGHT_RATIO:
        return found.turn
    turn_read = reading.get(found.turn, (0.0, 0))[0]
    opposite_read = reading.get((found.turn + 180) % 360, (0.0, 0))[0]
    return found.turn if turn_read - opposite_read >= READ_MARGIN else 0


def _turned_ratio(im: Image.Image, turn: int) -> tuple[float, int]:
    from pipeline.inputs import skew as profile  # numpy: loaded when a page is first measured

    if not turn:
        return profile.ascender_ratio(im, 0.0)
    turned = im.transpose(_TRANSPOSE[turn])
    try:
        return profile.ascender_ratio(turned, 0.0)
    finally:
        turned.close()


def apply(im: Image.Image, how: Straightening, transforms: list[str]) -> Image.Image:
    """The straightened page; ``transforms`` gets ``deskew:A`` and ``turn:Q`` in that order.
    Bilevel and palette pages are deskewed in gray/RGB (interpolation needs levels)."""
    out = im
    if how.skew:
        if out.mode in ("1", "P"):
            target = "L" if out.mode == "1" else "RGB"
            transforms.append(f"mode:{out.mode}->{target}")
            out = out.convert(target)
        out = _deskewed(out, how.skew)
        transforms.append(f"deskew:{how.skew:.2f}")
    if how.turn:
        turned = out.transpose(_TRANSPOSE[how.turn])
        if out is not im:
            out.close()
        out = turned
        transforms.append(f"turn:{how.turn}")
    return out


def _deskewed(im: Image.Image, angle: float) -> Image.Image:
    nw, nh, matrix = deskew_frame(im.width, im.height, angle)
    fill = 255 if im.mode in ("L", "1") else (255,) * len(im.getbands())
    return im.transform((nw, nh), Image.Transform.AFFINE, matrix, Image.Resampling.BICUBIC, fillcolor=fill)
