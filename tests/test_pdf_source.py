"""PDF page sources on real PDFs the tests build: rendering, text layers, rotation, geometry,
and every bad-PDF rejection. No network."""

from __future__ import annotations

import io

import pikepdf
import pytest
from PIL import Image

import pdfs
from pipeline.config import PdfConfig
from pipeline.inputs.pages import ImageSource, PageFailed, TextLayerPage, open_source
from pipeline.inputs.pdf import PdfSource
from pipeline.inputs.prepare import PrecheckLimits, PreparedPage, RejectedInput

LIMITS = PrecheckLimits()
AUTO = PdfConfig()
SENTENCE = "The quick brown fox jumps over the lazy dog, twice over."


def _open(tmp_path, data: bytes, settings: PdfConfig = AUTO, limits: PrecheckLimits = LIMITS, name="doc.pdf"):
    return open_source(pdfs.write(tmp_path / name, data), limits, settings)


def _reject(tmp_path, data: bytes, settings: PdfConfig = AUTO) -> RejectedInput:
    with pytest.raises(RejectedInput) as info:
        _open(tmp_path, data, settings)
    assert len(info.value.reason) > 20, "a reason a person can act on"
    return info.value


def test_born_digital_page_uses_its_text_layer_without_rendering(tmp_path):
    with _open(tmp_path, pdfs.build([("text", SENTENCE + "\nSecond line here.")])) as src:
        assert isinstance(src, PdfSource) and src.page_count == 1
        page = src.page(0)
    assert isinstance(page, TextLayerPage)
    assert page.text.split("\n") == [SENTENCE, "Second line here."]
    assert page.source["text_source"] == "text_layer" and page.source["page_size_pt"] == [612, 792]


def test_scanned_page_is_rendered_at_the_configured_dpi_and_prepared_like_a_tiff_page(tmp_path):
    with _open(tmp_path, pdfs.build([("scan", "Hello scan")]), PdfConfig(dpi=150)) as src:
        page = src.page(0)
        info = src.info()
    assert isinstance(page, PreparedPage)
    assert abs(page.width - 1275) <= 1 and abs(page.height - 1650) <= 1   # 8.5 x 11 in at 150 dpi (pdfium rounds up)
    assert page.transforms[:2] == ("convert:PDF->PNG", "render:150.0dpi")
    im = Image.open(io.BytesIO(page.data))
    assert im.format == "PNG" and im.mode == "L"               # a gray scan is sent as gray PNG
    src_facts = page.to_json()["source"]
    assert src_facts["text_source"] == "ocr" and src_facts["text_layer"] == "none"
    assert src_facts["render_dpi"] == 150.0 and src_facts["px_per_pt"] == pytest.approx(150 / 72)
    assert src_facts["padding"] == [0, 0] and src_facts["upload_scale"] == 1.0
    assert info["source_format"] == "PDF" and info["page_count"] == 1


def test_big_pages_render_at_a_lower_dpi_that_fits_the_width_limit(tmp_path):
    """Too wide for the model: rendered at the dpi that fits 4096 px wide. Its height is not fitted
    as well: the run cuts a page taller than 4096 px into strips (tests/test_strips.py)."""
    a2 = (1191, 1684)                                          # A2 in points: 4963 x 7017 px at 300 dpi
    with _open(tmp_path, pdfs.build([("scan", "Poster")], size=a2)) as src:
        page = src.page(0)
    facts = page.source
    assert page.width == 4096 and abs(page.height - 4096 * 1684 / 1191) <= 1   # pdfium rounds up
    assert facts["render_dpi"] < 300 and facts["rendered_size"] == [page.width, page.height]


def _in_user_units(data: bytes, unit: float) -> bytes:
    """The same page drawn in units of ``unit`` points (``/UserUnit``): its boxes and drawing
    scaled by 1/unit, so it shows at the same size in a viewer that honours the key."""
    def shrink(pdf):
        page = pdf.pages[0]
        page.obj.MediaBox = pikepdf.Array([v / unit for v in page.obj.MediaBox])
        page.contents_add(pikepdf.Stream(pdf, f"q {1 / unit} 0 0 {1 / unit} 0 0 cm ".encode()), prepend=True)
        page.contents_add(pikepdf.Stream(pdf, b" Q"))
        page.obj.UserUnit = unit
    return pdfs.edit(data, shrink)


def test_a_page_in_user_units_is_rendered_at_its_real_size(tmp_path):
    """A page whose /UserUnit says each unit is 10 points (PDF 1.6, for maps and plans over
    200 inches): pdfium takes its units for points, and the page was drawn at a tenth of its
    size (128 x 165 px at 150 dpi, its words 3 px tall) and read as garbage, silently. Now it
    is drawn at pdf.dpi of its real size, as the same page in points is."""
    plain = pdfs.build([("scan", "Surveyed plan of the river")])
    with _open(tmp_path, plain, PdfConfig(dpi=150), name="plain.pdf") as src:
        want = src.page(0)
    with _open(tmp_path, _in_user_units(plain, 10), PdfConfig(dpi=150)) as src:
        page = src.page(0)
    assert abs(page.width - want.width) <= 1 and abs(page.height - want.height) <= 1   # pdfium rounds
    assert page.source["user_unit"] == 10 and page.source["render_dpi"] == 150.0
    assert page.source["page_size_pt"] == [61.2, 79.2]          # boxes stay in the page's own units
    got, ref = (Image.open(io.BytesIO(p.data)).convert("L").point(lambda v: 255 if v < 128 else 0)
                for p in (page, want))                          # the ink
    assert all(abs(a - b) <= 2 for a, b in zip(got.getbbox(), ref.getbbox()))
    assert abs(got.histogram()[255] - ref.histogram()[255]) < 0.1 * ref.histogram()[255]


def test_tiny_pages_are_padded_and_the_padding_is_recorded(tmp_path):
    with _open(tmp_path, pdfs.build([("scan", "x")], size=(20, 20)), PdfConfig(dpi=72)) as src:
        page = src.page(0)
    assert (page.width, page.height) == (128, 127)
    assert page.source["rendered_size"] == [20, 20] and page.source["padding"] == [108, 107]


def test_mixed_document_takes_text_pages_and_renders_scanned_ones(tmp_path):
    data = pdfs.build([("text", SENTENCE), ("scan", "scanned page"), ("text", "Too short")])
    with _open(tmp_path, data) as src:
        kinds = [type(src.page(i)).__name__ for i in range(src.page_count)]
        short = src.page(2)
    assert kinds == ["TextLayerPage", "PreparedPage", "PreparedPage"]
    assert short.source["text_layer"] == "too_short:8"


def test_invisible_ocr_layer_is_not_trusted_unless_configured(tmp_path):
    data = pdfs.build([("ocrlayer", SENTENCE)])
    with _open(tmp_path, data) as src:
        page = src.page(0)
    assert isinstance(page, PreparedPage) and page.source["text_layer"] == "invisible"
    with _open(tmp_path, data, PdfConfig(trust_invisible_text=True)) as src:
        assert src.page(0).text == SENTENCE


def test_a_scan_with_a_stamped_line_of_text_is_ocred(tmp_path):
    """A page-sized scan with one line of real text stamped on it (a court's filing header)
    passed as real text: the stamp was the page's whole text, the scan's words never read.
    A page of text (a dozen lines) over a page-sized picture keeps its layer."""
    data = pdfs.build([("stamped", "Witness statement\nof Mary Brown"), ("text", "\n".join([SENTENCE] * 12))])
    data = pdfs.edit(data, _picture_under_page(1))
    with _open(tmp_path, data) as src:
        stamped, covered = src.page(0), src.page(1)
    assert isinstance(stamped, PreparedPage), stamped
    assert stamped.source["text_layer"].startswith("scanned_page:")
    assert 0 < float(stamped.source["text_layer"].split(":")[1]) < 0.05
    assert isinstance(covered, TextLayerPage) and covered.source["text_layer"] == "used"
    with _open(tmp_path, data, PdfConfig(text_layer="use")) as src:
        assert src.page(0).text.startswith("Case 1:19-cv-01234")   # `use` takes any layer


def _picture_under_page(index: int):
    """An edit putting a page-sized picture under page ``index``'s text (a slide's background)."""
    def edit(pdf):
        page = pdf.pages[index]
        bg = pdf.make_stream(b"\xc0" * (40 * 50), Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                             Width=40, Height=50, ColorSpace=pikepdf.Name.DeviceGray, BitsPerComponent=8)
        page.add_resource(bg, pikepdf.Name.XObject, pikepdf.Name.Bg)
        page.contents_add(pdf.make_stream(b"q 612 0 0 792 0 0 cm /Bg Do Q"), prepend=True)
        page.contents_coalesce()
    return edit


def test_a_filled_form_field_is_drawn_for_the_ocr(tmp_path):
    """A page whose only text is a filled form field (a widget with its appearance) was
    rendered blank: pdfium draws form fields only in a form environment, which was never
    made, so the value never reached the OCR."""
    def field(pdf):
        page = pdf.pages[0]
        font = pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
        look = pdf.make_stream(b"0 g 0 0 300 40 re f", Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                               BBox=[0, 0, 300, 40], Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(Helv=font)))
        widget = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Tx, T=pikepdf.String("name"),
            V=pikepdf.String("Mary Brown"), Rect=[100, 600, 400, 640], F=4, P=page.obj,
            AP=pikepdf.Dictionary(N=look)))
        page.obj.Annots = pdf.make_indirect(pikepdf.Array([widget]))
        pdf.Root.AcroForm = pikepdf.Dictionary(Fields=pikepdf.Array([widget]))
    data = pdfs.edit(pdfs.build([("text", "")]), field)
    with _open(tmp_path, data, PdfConfig(dpi=72)) as src:
        page = src.page(0)
    assert isinstance(page, PreparedPage)
    image = Image.open(io.BytesIO(page.data)).convert("L")
    assert image.crop((110, 162, 390, 182)).getextrema() == (0, 0)   # the field's black box, drawn


def test_text_layer_modes_use_and_ocr(tmp_path):
    data = pdfs.build([("text", "Short"), ("scan", "no text")])
    with _open(tmp_path, data, PdfConfig(text_layer="use")) as src:
        assert src.page(0).text == "Short"                      # any text layer is taken
        assert isinstance(src.page(1), PreparedPage)            # no layer at all: OCR
    with _open(tmp_path, pdfs.build([("text", SENTENCE)]), PdfConfig(text_layer="ocr")) as src:
        page = src.page(0)
        assert isinstance(page, PreparedPage) and "text_layer" not in page.source


def test_rotated_page_is_rendered_upright_and_its_rotation_recorded(tmp_path):
    data = pdfs.rotated(pdfs.build([("scan", "turned"), ("scan", "upright")]), 0, 90)
    with _open(tmp_path, data, PdfConfig(dpi=72)) as src:
        turned, upright = src.page(0), src.page(1)
    assert (turned.width, turned.height) == (792, 612) and (upright.width, upright.height) == (612, 792)
    assert turned.source["rotation"] == 90 and upright.source["rotation"] == 0
    assert turned.source["page_size_pt"] == [792, 612] and turned.source["mediabox_pt"] == [0, 0, 612, 792]


def test_owner_password_only_opens_normally(tmp_path):
    data = pdfs.encrypted(pdfs.build([("text", SENTENCE)]), user="")
    with _open(tmp_path, data) as src:
        assert src.page(0).text == SENTENCE


def test_user_password_is_rejected_as_encrypted(tmp_path):
    exc = _reject(tmp_path, pdfs.encrypted(pdfs.build([("text", SENTENCE)]), user="letmein"))
    assert exc.code == "encrypted" and "password" in exc.reason


def test_truncated_pdf_is_damaged(tmp_path):
    data = pdfs.build([("scan", "one"), ("scan", "two")])
    exc = _reject(tmp_path, data[: len(data) // 2])
    assert exc.code == "damaged_pdf" and "truncated" in exc.reason


def test_garbage_after_a_pdf_header_is_damaged(tmp_path):
    exc = _reject(tmp_path, b"%PDF-1.7\n" + b"not really a pdf\n" * 50 + b"%%EOF\n")
    assert exc.code == "damaged_pdf"


def test_zero_pages_is_rejected(tmp_path):
    assert _reject(tmp_path, pdfs.zero_pages(pdfs.build([("text", SENTENCE)]))).code == "no_pages"


def test_zero_pages_right_after_an_encrypted_pdf_is_still_no_pages(tmp_path):
    """pdfium reports the previous failed load's error for an empty page tree: never "encrypted"."""
    good = pdfs.build([("text", SENTENCE)])
    assert _reject(tmp_path, pdfs.encrypted(good, user="letmein")).code == "encrypted"
    assert _reject(tmp_path, pdfs.zero_pages(good)).code == "no_pages"


def test_more_pages_than_max_pages_is_rejected_whole(tmp_path):
    exc = _reject(tmp_path, pdfs.build([("text", SENTENCE)] * 3), PdfConfig(max_pages=2))
    assert exc.code == "too_many_pages" and "pdf.max_pages=2" in exc.reason


def test_a_page_that_cannot_render_fails_alone(tmp_path):
    data = pdfs.broken_page(pdfs.build([("scan", "one"), ("scan", "two"), ("scan", "three")]), 1)
    with _open(tmp_path, data, PdfConfig(dpi=72)) as src:
        with pytest.raises(PageFailed) as info:
            for i in range(src.page_count):
                try:
                    src.page(i)
                except PageFailed:
                    if i == 0:
                        raise AssertionError("the good first page failed")
                    raise
    assert info.value.page_index == 1 and info.value.code == "page_render_failed"


def test_absurd_page_size_is_a_bomb_refused_before_rendering(tmp_path):
    data = pdfs.build([("scan", "huge")], size=(14_000, 14_000))   # 58,333 px square at 300 dpi
    with _open(tmp_path, data, limits=PrecheckLimits(max_source_pixels=100_000_000)) as src:
        with pytest.raises(PageFailed) as info:
            src.page(0)
    assert info.value.code == "decompression_bomb" and "nothing was rendered" in info.value.reason


def test_content_not_extension_decides(tmp_path):
    pdf_named_jpg = _open(tmp_path, pdfs.build([("text", SENTENCE)]), name="scan.jpg")
    assert isinstance(pdf_named_jpg, PdfSource)
    pdf_named_jpg.close()
    png = tmp_path / "page.pdf"
    Image.new("L", (200, 200), 255).save(png, "PNG")
    src = open_source(png, LIMITS, AUTO)
    assert isinstance(src, ImageSource) and src.page(0).format == "PNG"
