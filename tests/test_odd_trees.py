"""Trees as operators really lay them out, through ``run``: a link in the input to the output
folder, the input folder going away while the walk is in it, a state store kept in the input,
and names the output tree would have to hold twice (a file's output and a folder's mirror, a
file's METS and its folder's)."""

from __future__ import annotations

import os

from helpers import distinct_png, failures, run_pipeline, write_config
from pipeline.exitcodes import ExitCode
from pipeline.inputs.scan import tree_member


def _fast(tmp_path, **kw):
    return write_config(tmp_path, "embedded", api__embedded={"engine": "fast", "workers": 1}, **kw)


async def test_a_link_in_the_input_to_the_output_folder_is_not_walked(tmp_path):
    # the output lies beside the input, and a link in the input leads to it (an operator's
    # shortcut to the results): before, the walk followed it and the run read its own outputs as
    # scans, paying again for every searchable PDF, rejecting every .txt and .json, one level deeper each night
    distinct_png(tmp_path / "in" / "a.png", 1)
    distinct_png(tmp_path / "in" / "box" / "b.png", 2)
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", tmp_path / "in" / "results")
    cfg = _fast(tmp_path, outputs=["txt", "json", "pdf"], include=["**/*"])
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.OK, log
    assert report["api_calls"]["submits"] == 2

    code, report, log = await run_pipeline(cfg, None)   # the next night: nothing new, nothing paid
    assert code == ExitCode.OK, log
    assert report["this_run"] == {"skipped": 2}
    assert report["api_calls"]["submits"] == 0 and failures(tmp_path) == {}
    assert not (tmp_path / "out" / "results").exists()


def test_a_path_through_a_link_into_a_skipped_folder_is_not_a_member_of_the_tree(tmp_path):
    # a state store from before the fix holds rows for paths reached through such a link: they are
    # no longer in the tree the walk sees, so they are not failures of it
    distinct_png(tmp_path / "out" / "a.png.pdf", 1)
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "out", tmp_path / "in" / "results")
    assert tree_member(tmp_path / "in")("results/a.png.pdf")
    assert not tree_member(tmp_path / "in", skip_dirs=(tmp_path / "out",))("results/a.png.pdf")


class _InputMovedAfterFirst:
    """The run's real walk, with the input folder renamed away (as a share is unmounted, or an
    operator moves the tree) right after the walk yields its first file."""

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self):
        from pipeline.run.tree import walk

        moved = False
        for item in walk(self.cfg):
            yield item
            if not moved:
                self.cfg.input.rename(self.cfg.input.with_name("in-moved"))
                moved = True


async def test_the_input_folder_going_away_mid_walk_is_work_left_not_all_done(tmp_path):
    import io

    from pipeline.config import load_config
    from pipeline.run.runner import Runner

    for i in range(6):
        distinct_png(tmp_path / "in" / f"box{i}" / "a.png", seed=i)
    cfg_path = _fast(tmp_path)
    cfg = load_config(cfg_path)
    runner = Runner(cfg, stream=io.StringIO())
    runner._walk = _InputMovedAfterFirst(cfg)
    code = await runner.run()
    log = runner.stream.getvalue()
    # before: exit 0 ("all files done") after one or two of the six files, the rest passed in silence
    assert code == ExitCode.STOPPED_EARLY, log
    assert "input_gone" in log and "stopped early: the input folder" in log, log
    assert runner.report["stop_reason"].startswith("the input folder")
    assert failures(tmp_path)["."]["code"] == "input_gone"

    (tmp_path / "in-moved").rename(tmp_path / "in")   # back: the next run takes the rest
    code, report, log = await run_pipeline(cfg_path, None)
    assert code == ExitCode.OK, log
    assert report["files_by_state"] == {"done": 6} and failures(tmp_path) == {}


async def test_a_folder_named_as_a_files_output_refuses_the_file_not_the_night(tmp_path):
    # q.png's .json is q.png.json in the output tree, where the input folder q.png.json/ is
    # mirrored: before, whichever came second could not be written and the run stopped (exit 2,
    # "a folder of that name is in the way") before every later file, night after night
    distinct_png(tmp_path / "in" / "q.png", 1)
    distinct_png(tmp_path / "in" / "q.png.json" / "y.png", 2)
    distinct_png(tmp_path / "in" / "z.png", 3)
    cfg = _fast(tmp_path)
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED, log
    rows = failures(tmp_path)
    assert set(rows) == {"q.png"} and rows["q.png"]["code"] == "output_clash", rows
    assert "q.png.json" in rows["q.png"]["reason"] and "rename" in rows["q.png"]["reason"]
    assert report["this_run"] == {"done": 2, "rejected": 1} and report["api_calls"]["submits"] == 2
    assert (tmp_path / "out" / "q.png.json" / "y.png.txt").is_file()

    (tmp_path / "in" / "q.png.json").rename(tmp_path / "in" / "q-pages")   # the archive renames the folder
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED, log          # its old results folder is still in the way
    assert "is a folder in the output tree" in failures(tmp_path)["q.png"]["reason"]
    assert report["api_calls"]["submits"] == 0 and (tmp_path / "out" / "q-pages" / "y.png.txt").is_file()

    (tmp_path / "out" / "q.png.json").rename(tmp_path / "old-results")   # and moves that away
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.OK, log                    # the file is read at once, no --retry-failed
    assert report["this_run"] == {"done": 1, "skipped": 2}, report["this_run"]
    assert report["api_calls"]["submits"] == 1 and (tmp_path / "out" / "q.png.json").is_file()


async def test_a_folder_named_as_a_done_files_output_refuses_the_folders_files(tmp_path):
    # the file was read on an earlier night, its .json is on disk: the folder that came since is
    # the one refused (before: its files could not be written, exit 2 every night)
    distinct_png(tmp_path / "in" / "q.png", 1)
    cfg = _fast(tmp_path)
    assert (await run_pipeline(cfg, None))[0] == ExitCode.OK
    distinct_png(tmp_path / "in" / "q.png.json" / "y.png", 2)
    distinct_png(tmp_path / "in" / "z.png", 3)
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED, log
    rows = failures(tmp_path)
    assert set(rows) == {"q.png.json/y.png"} and rows["q.png.json/y.png"]["code"] == "output_clash", rows
    assert "q.png" in rows["q.png.json/y.png"]["reason"]
    assert report["this_run"] == {"done": 1, "skipped": 1, "rejected": 1} and report["api_calls"]["submits"] == 1

    (tmp_path / "in" / "q.png").unlink()                # its outputs are kept, and still in the way
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED, log
    assert failures(tmp_path)["q.png.json/y.png"]["code"] == "output_clash"


async def test_a_state_store_inside_the_input_is_not_read_as_scans(tmp_path):
    # before, with include **/*: the database, its lock and its -shm rejected as not_an_image,
    # its -wal "changed" as the run wrote it, and every night exit 3, work left for ever
    distinct_png(tmp_path / "in" / "a.png", 1)
    distinct_png(tmp_path / "in" / "db [old]" / "b.png", 2)      # a scan beside the state store is read
    state = tmp_path / "in" / "db [old]" / "state*.sqlite "        # glob characters in its path are literal
    cfg = _fast(tmp_path, include=["**/*"], state_path=str(state))
    for night in (1, 2):
        code, report, log = await run_pipeline(cfg, None)
        assert code == ExitCode.OK, log
        assert failures(tmp_path) == {} and report["files_by_state"] == {"done": 2}
    assert report["this_run"] == {"skipped": 2} and report["api_calls"]["submits"] == 0
    assert state.is_file() and state.with_name(state.name + ".lock").is_file()


async def test_a_file_named_folder_does_not_overwrite_the_folders_own_mets(tmp_path):
    # include **/*, a scan saved without an extension as "folder": its folder.mets.xml and the
    # folder's (mets_per_folder) are one file; before, the folder's replaced the file's, and
    # verify failed every night on it ("METS has 2 pages, the result has 1")
    distinct_png(tmp_path / "in" / "folder", 1)
    distinct_png(tmp_path / "in" / "a.png", 2)
    cfg = _fast(tmp_path, include=["**/*"], outputs=["txt", "json", "mets"], mets_per_folder=True)
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED, log
    assert failures(tmp_path)["folder"]["code"] == "output_clash"
    assert "mets_per_folder" in failures(tmp_path)["folder"]["reason"]
    assert report["api_calls"]["submits"] == 1 and not (tmp_path / "out" / "folder.txt").exists()
    from pipeline.config import load_config
    from pipeline.run.audit import verify
    from pipeline.run.state import StateStore
    config = load_config(cfg)
    assert verify(config, StateStore(config.state_file)).problems == []


async def test_an_override_typed_for_a_folder_copied_from_a_mac_applies_to_it(tmp_path):
    # the folder's name came decomposed (NFD, "u" and a combining diaeresis), the override's glob
    # was typed composed (NFC): before, it never matched, and the folder was read as English
    import unicodedata
    typed, copied = (unicodedata.normalize(form, "Bücher") for form in ("NFC", "NFD"))
    distinct_png(tmp_path / "in" / copied / "a.png", 1)
    cfg = _fast(tmp_path, overrides=[{"glob": f"{typed}/**", "api": {"language": "de"}}])
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.OK, log
    assert "lang:de" in (tmp_path / "out" / copied / "a.png.txt").read_text()   # the fast engine echoes it


async def test_an_output_folder_left_in_the_input_when_the_output_moved_is_not_read(tmp_path):
    # the output was kept inside the input (skipped, as the run's own), then the config moved it
    # away: before, the old output folder was walked, its searchable PDFs paid for as scans
    distinct_png(tmp_path / "in" / "a.png", 1)
    cfg = _fast(tmp_path, output=str(tmp_path / "in" / "ocr"), outputs=["txt", "json", "pdf"])
    assert (await run_pipeline(cfg, None))[0] == ExitCode.OK
    cfg = _fast(tmp_path, outputs=["txt", "json", "pdf"])            # the output moved to tmp_path/out
    code, report, log = await run_pipeline(cfg, None)
    assert code == ExitCode.FILES_FAILED, log                          # said, so that it is moved or excluded
    assert failures(tmp_path)["ocr"]["code"] == "output_tree"
    assert report["this_run"] == {"done": 1} and report["api_calls"]["submits"] == 1   # a.png only
    assert not (tmp_path / "out" / "ocr").exists()
