"""Per-page facts and text-layer pages in the state store, and the additive upgrade of a
database written before the ``page_json`` column existed. Real SQLite files."""

from __future__ import annotations

import sqlite3

from pipeline.run.state import StateStore


def test_text_layer_page_is_done_without_a_request_and_survives_reopening(tmp_path):
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    store.page_text_layer("k", 0, "embedded text", {"page_index": 0, "source": {"text_source": "text_layer"}})
    store.page_intent("k", 1, "sha", None)
    store.page_submitted("k", 1, "req-1")
    store.page_done("k", 1, "ocr text", None)
    store.page_facts("k", 1, {"page_index": 1, "width": 10})
    store.close()
    pages = StateStore(path).get_pages("k")
    assert pages[0].state == "done" and pages[0].request_id is None and pages[0].submits == 0
    assert pages[0].result_text == "embedded text" and pages[0].facts["source"]["text_source"] == "text_layer"
    assert pages[1].request_id == "req-1" and pages[1].facts == {"page_index": 1, "width": 10}


def test_a_database_from_before_page_facts_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE pages (work_key TEXT NOT NULL, page INTEGER NOT NULL, state TEXT NOT NULL, "
               "request_id TEXT, upload_sha256 TEXT, submits INTEGER NOT NULL DEFAULT 0, "
               "unknown_outcomes INTEGER NOT NULL DEFAULT 0, resubmitted_reason TEXT, result_text TEXT, "
               "result_json TEXT, error_code TEXT, error TEXT, submitted_at REAL, finished_at REAL, "
               "PRIMARY KEY (work_key, page))")
    db.execute("INSERT INTO pages (work_key, page, state, request_id, submits) VALUES ('k', 0, 'submitted', 'r', 1)")
    db.commit()
    db.close()
    store = StateStore(path)
    (page,) = store.get_pages("k").values()
    assert page.request_id == "r" and page.facts is None      # the in-flight page is still re-attachable
    store.page_facts("k", 0, {"page_index": 0})
    assert store.get_pages("k")[0].facts == {"page_index": 0}
