"""PDFs through the real pipeline against the project's own server (fast engine, loopback):
outputs, text layers that cost nothing, per-page retry, a page that cannot render, bad PDFs as
per-file failures, and SIGKILL in the middle of a long PDF. The server's counters are the judge
of what was paid."""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest

import pdfs
from conftest import TOKEN
from helpers import distinct_png, failures, read_result, run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.server import FaultRule
from test_crash_safety import run_cli

SENTENCE = "The quick brown fox jumps over the lazy dog, twice over."


def scans(n: int) -> bytes:
    return pdfs.build([("scan", f"scanned page {i + 1}") for i in range(n)], size=(288, 144))


async def test_mixed_pdf_pays_only_for_pages_without_real_text(tmp_path, server):
    data = pdfs.build([("text", SENTENCE), ("scan", "scanned"), ("scan", "turned"), ("ocrlayer", SENTENCE)])
    pdfs.write(tmp_path / "in" / "box" / "report.pdf", pdfs.rotated(data, 2, 270))
    cfg = write_config(tmp_path, server.base_url, pdf__dpi=100)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1}
    assert server.counters.jobs_created == 3                    # the text page cost nothing
    text, doc = read_result(tmp_path, "box/report.pdf")
    pages = text.split("\f")
    assert len(pages) == 4 and pages[0] == SENTENCE
    assert all(p.startswith("FAST-OCR") for p in pages[1:])
    assert pages[1].split()[1] == "850x1100" and pages[2].split()[1] == "1100x850"   # rotation applied
    entries = doc["pages"]
    assert [e["text_source"] for e in entries] == ["text_layer", "ocr", "ocr", "ocr"]
    assert entries[0]["request_id"] is None and all(e["request_id"] for e in entries[1:])
    src = [e["source"] for e in entries]
    assert [s["page_number"] for s in src] == [1, 2, 3, 4]
    assert src[2]["rotation"] == 270 and src[1]["render_dpi"] == 100.0 and src[3]["text_layer"] == "invisible"
    assert doc["image"]["source_format"] == "PDF" and doc["image"]["page_count"] == 4
    assert [p["source"]["page_size_pt"] for p in doc["image"]["pages"]][:2] == [[612, 792], [612, 792]]
    before = server.counters.snapshot()                          # an unchanged rerun costs nothing
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert report["this_run"] == {"skipped": 1} and server.counters.snapshot() == before


async def test_text_layer_ocr_mode_sends_every_page(tmp_path, server):
    pdfs.write(tmp_path / "in" / "digital.pdf", pdfs.build([("text", SENTENCE)] * 2))
    cfg = write_config(tmp_path, server.base_url, pdf__text_layer="ocr", pdf__dpi=72)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert server.counters.jobs_created == 2
    doc = read_result(tmp_path, "digital.pdf")[1]
    assert [e["text_source"] for e in doc["pages"]] == ["ocr", "ocr"]


async def test_partly_failed_pdf_is_retried_page_by_page(tmp_path, server):
    pdfs.write(tmp_path / "in" / "book.pdf", scans(6))
    server.faults.job_error = FaultRule(count=1)                 # one page's job fails (transient)
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=1)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED and failures(tmp_path)["book.pdf"]["state"] == "failed_transient"
    assert server.counters.jobs_created == 6 and not (tmp_path / "out" / "book.pdf.txt").exists()
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1}
    assert server.counters.jobs_created == 7                     # only the failed page again
    assert sorted(server.counters.submits_by_hash.values()) == [1, 1, 1, 1, 1, 2]
    text, doc = read_result(tmp_path, "book.pdf")
    assert len(text.split("\f")) == 6 and sum(e["reused"] for e in doc["pages"]) == 5
    assert all("source" in e and e["source"]["page_number"] == i + 1 for i, e in enumerate(doc["pages"]))


async def test_a_page_that_cannot_render_fails_the_file_but_not_the_other_pages(tmp_path, server):
    pdfs.write(tmp_path / "in" / "broken.pdf", pdfs.broken_page(scans(4), 2))
    cfg = write_config(tmp_path, server.base_url)
    code, _, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED
    row = failures(tmp_path)["broken.pdf"]
    assert row["code"] == "page_render_failed" and "page 3" in row["reason"]
    # pdfium counts 3 pages in this tree (the broken entry hides the last one) and cannot load
    # the third: pages 1 and 2 went on and were paid once.
    assert server.counters.jobs_created == 2
    code, _, _ = await run_pipeline(cfg, TOKEN, retry_failed=True)
    assert code == ExitCode.FILES_FAILED and server.counters.jobs_created == 2   # done pages not paid again


async def test_bad_pdfs_are_per_file_failures_and_the_run_goes_on(tmp_path, server):
    good = pdfs.build([("text", SENTENCE)])
    inp = tmp_path / "in"
    pdfs.write(inp / "locked.pdf", pdfs.encrypted(good, user="letmein"))
    pdfs.write(inp / "owner-only.pdf", pdfs.encrypted(good, user=""))
    pdfs.write(inp / "cut.pdf", scans(3)[:1500])
    pdfs.write(inp / "empty.pdf", pdfs.zero_pages(good))
    pdfs.write(inp / "long.pdf", pdfs.build([("text", SENTENCE)] * 3))
    distinct_png(inp / "photo.png", seed=3)
    cfg = write_config(tmp_path, server.base_url, pdf__max_pages=2)
    code, report, _ = await run_pipeline(cfg, TOKEN)
    assert code == ExitCode.FILES_FAILED
    codes = {path: row["code"] for path, row in failures(tmp_path).items()}
    assert codes == {"locked.pdf": "encrypted", "cut.pdf": "damaged_pdf", "empty.pdf": "no_pages",
                     "long.pdf": "too_many_pages"}
    assert read_result(tmp_path, "owner-only.pdf")[0] == SENTENCE
    assert read_result(tmp_path, "photo.png")[0].startswith("FAST-OCR")
    assert server.counters.jobs_created == 1                     # the photo; no bad PDF was sent


async def test_identical_pdfs_are_paid_once(tmp_path, server):
    data = scans(2)
    pdfs.write(tmp_path / "in" / "a.pdf", data)
    pdfs.write(tmp_path / "in" / "copy" / "a.pdf", data)
    cfg = write_config(tmp_path, server.base_url)
    assert (await run_pipeline(cfg, TOKEN))[0] == ExitCode.OK
    assert server.counters.jobs_created == 2
    assert read_result(tmp_path, "a.pdf")[0] == read_result(tmp_path, "copy/a.pdf")[0]


async def test_changing_pdf_dpi_redoes_pdfs_but_not_images(tmp_path, server):
    pdfs.write(tmp_path / "in" / "doc.pdf", scans(1))
    distinct_png(tmp_path / "in" / "photo.png", seed=4)
    assert (await run_pipeline(write_config(tmp_path, server.base_url), TOKEN))[0] == ExitCode.OK
    code, report, _ = await run_pipeline(write_config(tmp_path, server.base_url, pdf__dpi=150), TOKEN)
    assert code == ExitCode.OK and report["this_run"] == {"done": 1, "skipped": 1}
    assert read_result(tmp_path, "doc.pdf")[1]["pages"][0]["source"]["render_dpi"] == 150.0


def submitting_pages(tmp_path) -> set[tuple[str, int]]:
    """The pages (work key, page) whose submit was in flight when the process died: one PDF's
    pages share their file's work key, so they are told apart by page number."""
    db = sqlite3.connect(tmp_path / "out" / ".pipeline" / "state.sqlite")
    try:
        return set(db.execute("SELECT work_key, page FROM pages WHERE state='submitting'").fetchall())
    finally:
        db.close()

@pytest.mark.parametrize("point", ["after_submit:7", "before_submit:12", "after_poll:9"])
async def test_sigkill_in_the_middle_of_a_long_pdf_loses_nothing_and_pays_once(tmp_path, server, point):
    n = 24
    pdfs.write(tmp_path / "in" / "long.pdf", scans(n))
    cfg = write_config(tmp_path, server.base_url, concurrency__jobs_in_flight=2)
    code, out = await run_cli("run", str(cfg), crashpoint=point)
    assert code == -signal.SIGKILL, out
    unknown = submitting_pages(tmp_path)
    jobs_at_crash = server.counters.jobs_created
    assert 0 < jobs_at_crash < n
    code, out = await run_cli("run", str(cfg))
    assert code == ExitCode.OK, out
    text, doc = read_result(tmp_path, "long.pdf")
    assert len(text.split("\f")) == n and all(p.startswith("FAST-OCR") for p in text.split("\f"))
    counts = sorted(server.counters.submits_by_hash.values())
    assert len(counts) == n
    assert sum(c - 1 for c in counts) <= len(unknown) <= 2       # at most the POSTs in flight at the kill (2 jobs)
    assert sum(e["reused"] for e in doc["pages"]) >= jobs_at_crash - 2   # results from before the kill kept
    report = json.loads((tmp_path / "out" / ".pipeline" / "run-report.json").read_text())
    assert len(report["possible_duplicates"]) == len(unknown)
    code, out = await run_cli("verify", str(cfg))
    assert code == ExitCode.OK, out
