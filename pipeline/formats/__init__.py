"""Output formats as renderers: each a pure function from a file's results to bytes.

``txt`` and ``json`` render the result document as ``process`` builds it; ``alto``, ``hocr``
and ``pdf`` render a ``FileLayout`` (boxes mapped into the source's coordinates, see
``model`` and ``pipeline.inputs.geometry``). One writer (``writer``) writes every configured output
atomically beside the others, so adding a format is adding a renderer and a test, and
regenerating outputs needs nothing but the stored ``.json`` and the source file.

| name | file | needs |
|---|---|---|
| ``txt`` | ``scan.tif.txt`` | the text (pages separated by form feeds) |
| ``json`` | ``scan.tif.json`` | the result record; always written, the others are regenerated from it |
| ``alto`` | ``scan.tif.alto.xml`` | word boxes: the answer's, or placed on the page (``model``) |
| ``hocr`` | ``scan.tif.hocr`` | word boxes: the answer's, or placed on the page (``model``) |
| ``pdf`` | ``scan.tif.pdf`` | word boxes (as above) and the source file |
| ``page`` | ``scan.tif.page.xml`` (``.page-2.xml`` ... for further pages) | word boxes (as above) |
| ``mets`` | ``scan.tif.mets.xml`` | nothing more: it points at the source and the other outputs |
| ``md`` | ``scan.tif.md`` | nothing: the model's raw answers (Markdown from the hosted model), pages marked |
"""

from __future__ import annotations

SUFFIXES = {"txt": ".txt", "json": ".json", "alto": ".alto.xml", "hocr": ".hocr", "pdf": ".pdf",
            "page": ".page.xml", "mets": ".mets.xml",
            "md": ".md"}
FORMATS = tuple(SUFFIXES)
REQUIRED = ("txt", "json")            # the record every other output is regenerated from
NEEDS_BOXES = ("alto", "hocr", "pdf", "page")  # want word boxes: a text-only answer's are placed (run/placing.py)
DEFAULT_OUTPUTS = ("txt", "json")
