"""How the text lines of a page lie: their direction (across or down the page) and skew angle.

Why our own estimate and not a library: the estimate is a projection profile over the page's
ink, which numpy (already installed with the engines) does in a few milliseconds on a reduced
page; ``deskew`` brings scikit-image (~60 MB) for a Hough transform of the same question, and
``jdeskew`` answers only the angle, not whether the lines run down the page. The profile also
gives what the orientation check needs for free (see ``pipeline.inputs.upright``).

The method: the page is reduced to ``ANALYSIS_SIDE`` pixels on its long side and binarised
(Otsu). Every ink pixel is projected onto the normal of a candidate line direction; text lines
make the profile spiky, and the sum of its squares is largest when the candidate is parallel to
the lines. Both axes are searched (lines across the page, and lines down it, as on a page
turned 90 degrees), first every ``COARSE_STEP`` degrees within ``MAX_ANGLE``, then finely
around the best. The score of the best axis over the other says how clearly the page has lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: long side of the reduced page the analysis runs on (about 100 dpi for a letter page)
ANALYSIS_SIDE = 1000
#: the widest skew searched, in degrees (a scan is rarely more than a few degrees off)
MAX_ANGLE = 15.0
COARSE_STEP = 0.5
FINE_STEP = 0.05
#: grey levels between the mean of the ink and of the paper below which a page has no ink
MIN_CONTRAST = 64
#: fewer ink pixels than this (on the reduced page) is not a page of text: a few marks, a stamp
#: (a dozen scattered marks have ~2,500; the sparsest shared scan, a table, 23,000)
MIN_INK_POINTS = 4000
#: more of the page than this is "ink": not a page of print (once picture-like tiles are cleared)
MAX_INK = 0.3
#: a square of this many pixels (the reduced page: 2-3 lines of text) with more ink than this
#: share is a picture, not print
PICTURE_TILE = 25
PICTURE_INK = 0.5
#: a square beside a picture with more ink than this is the picture's edge (print: 0.1-0.3)
PICTURE_EDGE_INK = 0.35
#: what is left once the pictures are cleared must look like print (noise stays near 0.25;
#: the text beside a photograph on the shared scans is 0.1)
PRINT_BESIDE_PICTURES = 0.2
#: a profile with fewer separate runs than this has no lines to level
MIN_LINES = 3
#: the highest peak of a profile set aside (this many bins either side, on the reduced page: wider
#: than a drawn line, narrower than a text line's x-height) to tell lines from a single stroke
PEAK_HALF = 3
#: ink pixels used at most (a deterministic stride over the rest): enough for 0.05 degrees
MAX_POINTS = 120_000


@dataclass(frozen=True)
class LineLie:
    """What the profile says. ``angle`` is the counter-clockwise turn, in degrees, that makes the
    lines level (Pillow's ``rotate`` convention); ``across`` is False when the lines run down
    the page; ``clarity`` is the best axis' score over the other's (1.0: no lines at all)."""

    angle: float
    across: bool
    clarity: float
    ink_points: int
    gain: float = 1.0       # the score at ``angle`` over the score level (0 degrees), same axis
    #: the same with each profile's highest peak set aside (``PEAK_HALF``): text lines or rules
    #: keep most of the gain, a drawing's long straight stroke or two do not
    gain_beside_peak: float = 1.0


def reduce_gray(im: Image.Image, side: int = ANALYSIS_SIDE) -> Image.Image:
    """A grayscale copy with the long side at most ``side`` (triangle filter: fast, antialiased)."""
    gray = im if im.mode == "L" else im.convert("L")
    factor = min(1.0, side / max(gray.size))
    if factor < 1.0:
        size = (max(1, round(gray.width * factor)), max(1, round(gray.height * factor)))
        small = gray.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        if gray is not im:
            gray.close()
        return small
    return gray if gray is not im else im.copy()


def ink_mask(gray: Image.Image) -> np.ndarray:
    """Boolean ink mask by Otsu's threshold; an all-blank or flat page has no ink."""
    arr = np.asarray(gray, dtype=np.uint8)
    hist = np.bincount(arr.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean_all = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 / total - m0) ** 2 / (w0 * w1)
    between = np.nan_to_num(between[:-1])
    if not between.any():
        return np.zeros(arr.shape, dtype=bool)
    threshold = int(np.argmax(between))
    dark = m0[threshold] / max(w0[threshold], 1.0)
    light = (mean_all - m0[threshold]) / max(w1[threshold], 1.0)
    if light - dark < MIN_CONTRAST:     # a flat page, its noise or compression blocks: no ink
        return np.zeros(arr.shape, dtype=bool)
    mask = arr <= threshold
    if mask.mean() > 0.5 and _centre(mask).mean() > 0.5:   # light text on a dark ground: the minority is the ink
        mask = ~mask            # (not a page lying on a wider dark bed: its middle is paper)
    mask &= ~_from_the_edges(mask)
    heavy = mask.mean() > MAX_INK   # a picture or a gradient, not print on paper; or print beside one
    mask = _without_pictures(mask)
    if heavy and (mask.mean() > PRINT_BESIDE_PICTURES or mask.sum() < MIN_INK_POINTS):
        return np.zeros(arr.shape, dtype=bool)
    return mask


def _centre(mask: np.ndarray) -> np.ndarray:
    """The middle half of the image each way, where the paper of a scan lies, whatever its bed."""
    h, w = mask.shape
    return mask[h // 4: h - h // 4, w // 4: w - w // 4]


def _from_the_edges(mask: np.ndarray) -> np.ndarray:
    """The ink reached from the page's edges without crossing paper: along every row and
    column, the run of ink that starts at either end. That is what lies around the paper, not
    print on it: a black-backed feeder's dark surround, the white frame around a slide's dark
    ground, the corners a skewed scan was filled with. Left in, its long straight edges and
    the rows it fills from end to end outweigh the text lines in the profile (a slide skewed
    by 1.5 degrees was left unlevelled for it); print that touches an edge loses a stroke."""
    m = mask.astype(np.uint8)
    runs = np.cumprod(m, axis=1) | np.cumprod(m[:, ::-1], axis=1)[:, ::-1]
    runs |= np.cumprod(m, axis=0) | np.cumprod(m[::-1], axis=0)[::-1]
    return runs.astype(bool)


def _without_pictures(mask: np.ndarray) -> np.ndarray:
    """The mask with its picture-like tiles cleared: ``PICTURE_TILE`` pixel squares more than
    ``PICTURE_INK`` ink (a photograph under Otsu's threshold, a table's shaded columns, a solid
    title bar; print stays well below it, a bold headline included), so the lines of text beside
    them can still be measured: left in, a shaded column spans every row of its table and the
    profile finds no lines in it."""
    h, w = mask.shape
    t = PICTURE_TILE
    th, tw = -(-h // t), -(-w // t)
    padded = np.zeros((th * t, tw * t), dtype=bool)
    padded[:h, :w] = mask
    density = padded.reshape(th, t, tw, t).mean(axis=(1, 3))
    picture = density > PICTURE_INK
    near = np.zeros((th + 2, tw + 2), dtype=bool)
    near[1:-1, 1:-1] = picture
    near = near[:-2, 1:-1] | near[2:, 1:-1] | near[1:-1, :-2] | near[1:-1, 2:]
    picture |= near & (density > PICTURE_EDGE_INK)   # the picture's cut edge, in part of a square
    keep = np.repeat(np.repeat(~picture, t, axis=0), t, axis=1)[:h, :w]
    return mask & keep


def ink_points(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the ink pixels, centred on the page, thinned to at most ``MAX_POINTS``."""
    ys, xs = np.nonzero(mask)
    stride = max(1, len(xs) // MAX_POINTS)
    h, w = mask.shape
    return xs[::stride].astype(np.float64) - w / 2.0, ys[::stride].astype(np.float64) - h / 2.0


def _score(xs: np.ndarray, ys: np.ndarray, angle: float, across: bool, beside_peak: bool = False) -> float:
    """Sum of squares of the ink profile on the normal of lines at ``angle`` (counter-clockwise
    turn that would level them); ``beside_peak``: without the profile's highest peak."""
    a = np.deg2rad(angle)
    if across:   # level after a counter-clockwise turn by a: y' = x sin a + y cos a (image y down)
        proj = ys * np.cos(a) - xs * np.sin(a)
    else:
        proj = xs * np.cos(a) + ys * np.sin(a)
    bins = np.floor(proj - proj.min()).astype(np.int64)
    profile = np.bincount(bins).astype(np.float64)
    if beside_peak:
        top = int(np.argmax(profile))
        profile[max(0, top - PEAK_HALF): top + PEAK_HALF + 1] = 0.0
    # times the profile's length: ink without any line structure then scores about 1.0 * n^2
    # on either axis, whatever the page's proportions
    return float(np.dot(profile, profile)) * len(profile)


def _runs(xs: np.ndarray, ys: np.ndarray, angle: float, across: bool) -> int:
    """How many separate bands of ink the profile at ``angle`` has (text lines, columns)."""
    a = np.deg2rad(angle)
    proj = ys * np.cos(a) - xs * np.sin(a) if across else xs * np.cos(a) + ys * np.sin(a)
    profile = np.bincount(np.floor(proj - proj.min()).astype(np.int64))
    on = (profile > max(1.0, 0.02 * profile.max())).astype(np.int8)
    return int(np.count_nonzero(np.diff(on) == 1) + on[0])


def _search(xs: np.ndarray, ys: np.ndarray, across: bool) -> tuple[float, float]:
    coarse = np.arange(-MAX_ANGLE, MAX_ANGLE + 1e-9, COARSE_STEP)
    scores = [_score(xs, ys, a, across) for a in coarse]
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - COARSE_STEP, best + COARSE_STEP + 1e-9, FINE_STEP)
    fine_scores = [_score(xs, ys, a, across) for a in fine]
    i = int(np.argmax(fine_scores))
    return float(fine[i]), float(fine_scores[i])


def line_lie(gray: Image.Image, mask: np.ndarray | None = None) -> LineLie:
    """The direction and skew of the text lines of a reduced grayscale page (``mask``: its
    ``ink_mask``, when the caller has it already)."""
    mask = ink_mask(gray) if mask is None else mask
    xs, ys = ink_points(mask)
    if len(xs) < MIN_INK_POINTS:
        return LineLie(0.0, True, 1.0, int(len(xs)))
    a_across, s_across = _search(xs, ys, True)
    a_down, s_down = _search(xs, ys, False)
    angle, across = (a_across, True) if s_across >= s_down else (a_down, False)
    if _runs(xs, ys, angle, across) < MIN_LINES:
        return LineLie(0.0, True, 1.0, int(len(xs)))
    gain = max(s_across, s_down) / max(_score(xs, ys, 0.0, across), 1.0)
    # a drawing's one long straight line near an axis makes the profile spiky at its angle; text
    # lines and a ledger's rules are many: the page's lie still beats level without the highest peak
    beside = _score(xs, ys, angle, across, True) / max(_score(xs, ys, 0.0, across, True), 1.0)
    if s_across >= s_down:
        return LineLie(round(a_across, 2), True, s_across / max(s_down, 1.0), int(len(xs)), gain, beside)
    return LineLie(round(a_down, 2), False, s_down / max(s_across, 1.0), int(len(xs)), gain, beside)


def ascender_ratio(gray: Image.Image, angle: float, mask: np.ndarray | None = None) -> tuple[float, int]:
    """Ink above the x-height band of each text line over ink below it, and the lines counted.

    Latin text has more ascenders and capitals (b d f h k l t, A-Z, i's dot) than descenders
    (g j p q y): on an upright page the ratio is well above 1 (2-10 on the shared scans), on
    a page upside down well below. It is the fast check that lets an upright page skip
    Tesseract's orientation detection; it never turns a page by itself.
    """
    xs, ys = ink_points(ink_mask(gray) if mask is None else mask)
    if len(xs) < 200:
        return 1.0, 0
    a = np.deg2rad(angle)
    proj = ys * np.cos(a) - xs * np.sin(a)
    profile = np.bincount(np.floor(proj - proj.min()).astype(np.int64)).astype(np.float64)
    on = profile > max(1.0, 0.02 * profile.max())
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
    above = below = 0.0
    lines = 0
    for start, end in zip(edges[::2], edges[1::2]):
        seg = profile[start:end]
        if not 4 <= len(seg) <= 80:     # specks and rules, pictures and tables' blocks
            continue
        core = np.flatnonzero(seg >= 0.5 * seg.max())
        above += float(seg[:core[0]].sum())
        below += float(seg[core[-1] + 1:].sum())
        lines += 1
    return above / max(below, 1.0), lines
