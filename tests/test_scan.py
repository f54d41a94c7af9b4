"""scan_tree: order, filters, symlinks, problems and laziness, on trees the tests build."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from helpers import run_as_nobody
from pipeline.inputs.scan import GlobSet, ScanEntry, ScanProblem, glob_to_regex, scan_tree, tree_member


def touch(root: Path, rel: str, data: bytes = b"x", age_s: float | None = 3600.0) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if age_s is not None:
        t = time.time() - age_s
        os.utime(p, (t, t))
    return p


def entries(items) -> list[str]:
    return [i.rel for i in items if isinstance(i, ScanEntry)]


def problems(items) -> dict[str, str]:
    return {i.rel: i.code for i in items if isinstance(i, ScanProblem)}


def test_order_is_sorted_depth_first_and_deterministic(tmp_path):
    for rel in ["b/2.png", "a.png", "b/1.png", "c.png", "b/sub/z.png", "b/a.png", "A.png"]:
        touch(tmp_path, rel)
    first = entries(scan_tree(tmp_path))
    assert first == ["A.png", "a.png", "b/1.png", "b/2.png", "b/a.png", "b/sub/z.png", "c.png"]
    assert entries(scan_tree(tmp_path)) == first


def test_entry_carries_stat_facts(tmp_path):
    p = touch(tmp_path, "x/y.jpg", b"12345")
    (e,) = list(scan_tree(tmp_path))
    st = os.stat(p)
    assert e == ScanEntry(tmp_path / "x" / "y.jpg", "x/y.jpg", 5, st.st_mtime_ns, st.st_ino, st.st_dev)


def test_unicode_and_spaces_in_names(tmp_path):
    names = ["field notes/page one.png", "Åsa/brev från mormor.jpg", "日本/文書.tif", "ça va/x y z.png"]
    for rel in names:
        touch(tmp_path, rel)
    got = entries(scan_tree(tmp_path))
    assert sorted(got) == sorted(names)
    for item in scan_tree(tmp_path):
        assert item.path.is_file() and item.path == tmp_path / item.rel


def test_include_and_exclude_globs(tmp_path):
    for rel in ["a.tif", "x/b.tif", "x/y/c.tif", "x/d.png", "archive/2024/e.tif", "archive/2023/f.tif",
                "g.TIF"]:
        touch(tmp_path, rel)
    assert entries(scan_tree(tmp_path, include=["**/*.tif"])) == [
        "a.tif", "archive/2023/f.tif", "archive/2024/e.tif", "x/b.tif", "x/y/c.tif"]
    # a pattern without "/" matches the name at any depth
    assert entries(scan_tree(tmp_path, include=["*.png"])) == ["x/d.png"]
    assert entries(scan_tree(tmp_path, include=["**/*.tif"], exclude=["archive/2024/**"])) == [
        "a.tif", "archive/2023/f.tif", "x/b.tif", "x/y/c.tif"]
    assert entries(scan_tree(tmp_path, include=["x/**/*.tif"])) == ["x/b.tif", "x/y/c.tif"]
    assert entries(scan_tree(tmp_path, include=["*.tif"], ignore_case=True))[-1] == "x/y/c.tif"
    assert "g.TIF" in entries(scan_tree(tmp_path, include=["*.tif"], ignore_case=True))
    assert "g.TIF" not in entries(scan_tree(tmp_path, include=["*.tif"]))


def test_glob_semantics():
    g = GlobSet(["a/**/b/*.jpg"])
    assert g.match("a/b/x.jpg") and g.match("a/q/r/b/x.jpg")
    assert not g.match("ab/x.jpg") and not g.match("a/b/c/x.png")
    star = GlobSet(["docs/*.png"])
    assert star.match("docs/a.png") and not star.match("docs/sub/a.png")   # * never crosses /
    assert GlobSet(["[!x]*.png"]).match("a.png") and not GlobSet(["[!x]*.png"]).match("x.png")
    assert not GlobSet(["x[!a]y"]).match("x/y")           # a negated class never crosses / either
    assert not GlobSet(["x[!a]y.png"]).match("sub/x/y.png") and GlobSet(["x[!a]y.png"]).match("sub/xby.png")
    old = GlobSet(["[[]old]/**"])                             # "[" in a class is literal, no nested set
    assert old.covers_dir("[old]") and not old.covers_dir("o") and old.match("[old]/a.png")
    assert GlobSet(["archive/**"]).covers_dir("archive")
    assert not GlobSet(["archive/**"]).covers_dir("old/archive")          # "/" anchors at root
    assert GlobSet(["**/cache/**"]).covers_dir("old/cache")
    with pytest.raises(ValueError):
        glob_to_regex("a**b/*.png")
    with pytest.raises(ValueError):
        glob_to_regex("[abc")


def test_globs_are_blind_to_unicode_normalization(tmp_path):
    # a folder copied from a Mac spells "ü" as "u" and a combining diaeresis (NFD); the config's
    # exclude, typed, as one character (NFC): before, the exclude missed it and the folder was read
    import unicodedata
    typed, copied = (unicodedata.normalize(form, "Bücher") for form in ("NFC", "NFD"))
    touch(tmp_path, f"{copied}/a.png")
    touch(tmp_path, "keep/b.png")
    assert entries(scan_tree(tmp_path, exclude=[f"{typed}/**"])) == ["keep/b.png"]
    assert entries(scan_tree(tmp_path, include=[f"{typed}/*.png"])) == [f"{copied}/a.png"]  # the name as it is on disk
    assert GlobSet([f"{copied}/**"]).match(f"{typed}/a.png")          # and the other way round


def test_every_pattern_of_a_set_matches_the_whole_path_not_a_prefix(tmp_path):
    # The default include is a set of patterns: each must end at the name's end, or a sidecar
    # (`page.tif.md5`, an output `.png.json` under the input) is taken as a scan and rejected
    # every night, and `exclude: [a/**, b/**]` must not prune a folder `abc`.
    for rel in ["a.tif", "a.tif.md5", "p.png.json", "q.jpg.bak", "abc/k.tif", "a/k.tif"]:
        touch(tmp_path, rel)
    taken = entries(scan_tree(tmp_path, include=["**/*.png", "**/*.jpg", "**/*.tif"]))
    assert sorted(taken) == ["a.tif", "a/k.tif", "abc/k.tif"]
    assert sorted(entries(scan_tree(tmp_path, include=["*.tif"], exclude=["a/**", "b/**"]))) == ["a.tif", "abc/k.tif"]
    assert not GlobSet(["*.tif", "*.pdf"]).match("x.tiff")
    assert not GlobSet(["a/**", "b/**"]).covers_dir("abc")


def test_excluded_directory_is_not_entered(tmp_path):
    touch(tmp_path, "keep/a.png")
    (tmp_path / "old").mkdir()
    os.symlink("..", tmp_path / "old" / "loop")          # would be reported if "old" were entered
    assert problems(scan_tree(tmp_path)) == {"old/loop": "symlink_loop"}
    items = list(scan_tree(tmp_path, exclude=["old/**"]))
    assert entries(items) == ["keep/a.png"] and problems(items) == {}


def test_hidden_and_temp_files_are_skipped_silently(tmp_path):
    for rel in ["ok.png", ".hidden.png", ".git/objects/x.png", "draft.png~", "up.png.part",
                "dl.jpg.crdownload", "x.tmp", "y.partial", ".z.swp", "~$report.docx", "Thumbs.db",
                "sub/.DS_Store", "sub/fine.jpg", "UPPER.TMP"]:
        touch(tmp_path, rel)
    items = list(scan_tree(tmp_path))
    assert entries(items) == ["ok.png", "sub/fine.jpg"]
    assert problems(items) == {}


def test_the_folders_a_nas_keeps_in_every_share_are_skipped_silently(tmp_path):
    # a Synology keeps five JPEG thumbnails of every image in @eaDir/<name>/: before, each was
    # taken as a scan (and paid for); its recycle bin holds the files the archive deleted
    for rel in ["scans/a.jpg", "scans/@eaDir/a.jpg/SYNOFILE_THUMB_XL.jpg", "scans/@eaDir/a.jpg/SYNOFILE_THUMB_M.jpg",
                "#recycle/scans/old.jpg", "@Recycle/b.jpg", "$RECYCLE.BIN/S-1-5/c.jpg", "#snapshot/d.jpg",
                "System Volume Information/e.jpg", "scans/@EADIR/f.jpg"]:
        touch(tmp_path, rel)
    items = list(scan_tree(tmp_path))
    assert entries(items) == ["scans/a.jpg"] and problems(items) == {}


def test_skip_dirs_by_identity_not_spelling(tmp_path):
    touch(tmp_path, "in/a.png")
    touch(tmp_path, "in/out/result.png")
    touch(tmp_path, "in/z/b.png")
    os.symlink(tmp_path / "in" / "out", tmp_path / "in" / "out-link")
    odd_spelling = tmp_path / "in" / "z" / ".." / "out"
    got = entries(scan_tree(tmp_path / "in", skip_dirs=[odd_spelling]))
    assert got == ["a.png", "z/b.png"]
    assert "out/result.png" in entries(scan_tree(tmp_path / "in"))


def test_skip_dir_created_during_the_walk_is_still_skipped(tmp_path):
    touch(tmp_path, "in/a.png")
    touch(tmp_path, "in/z.png")
    (tmp_path / "in" / "sub").mkdir()
    gen = scan_tree(tmp_path / "in", skip_dirs=[tmp_path / "in" / "sub" / "out"])   # not there yet
    assert next(gen).rel == "a.png"
    touch(tmp_path, "in/sub/out/result.png")          # the run starts writing results
    touch(tmp_path, "in/sub/c.png")
    assert entries(gen) == ["sub/c.png", "z.png"]


def test_symlinks_followed_loops_and_broken_links_reported(tmp_path):
    outside = tmp_path / "outside"
    touch(outside, "o.png")
    root = tmp_path / "root"
    touch(root, "d/a.png")
    os.symlink(outside, root / "d" / "linked-dir")
    os.symlink(root / "d" / "a.png", root / "file-link.png")
    os.symlink("..", root / "d" / "up")                       # d/up -> root: a loop
    os.symlink("self", root / "self")                        # ELOOP
    os.symlink("missing.png", root / "broken.png")
    items = list(scan_tree(root))
    assert entries(items) == ["d/a.png", "d/linked-dir/o.png", "file-link.png"]
    assert problems(items) == {"d/up": "symlink_loop", "self": "symlink_loop",
                               "broken.png": "broken_symlink"}
    broken = next(i for i in items if i.rel == "broken.png")
    assert "missing.png" in broken.reason


def test_a_link_to_a_folder_holding_the_input_is_not_walked(tmp_path):
    # ``ln -s .. up`` in the input folder (or ``ln -s / all``): followed, it walked the folders
    # beside the input, reading (and paying for) files that are not the input's, before it met the
    # loop at the input folder itself
    touch(tmp_path, "archive/in/a.png")
    touch(tmp_path, "archive/private/secret.png")
    root = tmp_path / "archive" / "in"
    os.symlink("..", root / "up")
    os.symlink("/", root / "everything")
    items = list(scan_tree(root))
    assert entries(items) == ["a.png"]
    assert problems(items) == {"up": "symlink_loop", "everything": "symlink_loop"}
    up = next(i for i in items if i.rel == "up")
    assert str(tmp_path / "archive") in up.reason and "holds the input folder" in up.reason


def test_a_folder_of_results_is_not_walked_as_scans(tmp_path):
    # an output folder kept inside the input once, left there when the output moved away (or
    # another archive's): before, its searchable PDFs were read (and paid for) as scans
    touch(tmp_path, "a.png")
    touch(tmp_path, "ocr/a.png.pdf")
    touch(tmp_path, "ocr/.pipeline/state.sqlite")
    touch(tmp_path, "notes/.pipeline/other-tool.cfg")        # another tool's .pipeline: walked
    touch(tmp_path, "notes/n.png")
    marks = (".pipeline/state.sqlite", ".pipeline/run-report.json")
    items = list(scan_tree(tmp_path, output_marks=marks))
    assert entries(items) == ["a.png", "notes/n.png"] and problems(items) == {"ocr": "output_tree"}
    assert "move it out of the input, or exclude it" in next(i.reason for i in items if isinstance(i, ScanProblem))
    assert entries(scan_tree(tmp_path, exclude=["ocr/**"], output_marks=marks)) == ["a.png", "notes/n.png"]
    assert problems(scan_tree(tmp_path, exclude=["ocr/**"], output_marks=marks)) == {}   # excluded: no word
    member = tree_member(tmp_path, output_marks=marks)
    assert member("a.png") and not member("ocr/a.png.pdf")


def test_files_still_being_written_are_reported_not_yielded(tmp_path):
    touch(tmp_path, "old.png", age_s=600)
    touch(tmp_path, "new.png", age_s=None)                   # mtime = now
    items = list(scan_tree(tmp_path, min_age_s=60))
    assert entries(items) == ["old.png"]
    assert problems(items) == {"new.png": "still_being_written"}
    assert entries(scan_tree(tmp_path)) == ["new.png", "old.png"]


def test_a_file_dated_in_the_future_is_judged_by_its_ctime_not_left_for_ever(tmp_path):
    # a scanner's clock a year ahead, its mtime kept by the copy: the mtime never ages into the
    # past, so before, the file was still_being_written every night (never read, exit 3)
    ahead = time.time() + 365 * 86400
    p = touch(tmp_path, "ahead.png", age_s=None)
    os.utime(p, (ahead, ahead))
    assert problems(scan_tree(tmp_path, min_age_s=3600)) == {"ahead.png": "still_being_written"}  # ctime: just now
    while time.time_ns() - p.stat().st_ctime_ns <= 50_000_000:      # its ctime 50 ms old: the copy is over
        time.sleep(0.01)
    items = list(scan_tree(tmp_path, min_age_s=0.05))
    assert entries(items) == ["ahead.png"] and problems(items) == {}


def test_fifo_is_a_special_file(tmp_path):
    touch(tmp_path, "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    items = list(scan_tree(tmp_path))
    assert entries(items) == ["a.png"] and problems(items) == {"pipe.png": "special_file"}


def test_walk_is_lazy(tmp_path):
    """The first entry arrives before later directories are listed: a file created in a later
    sibling directory after the first ``next()`` is still found, which an eager walk (that had
    listed everything up front) would miss."""
    touch(tmp_path, "a.png")
    for i in range(300):
        touch(tmp_path, f"big/{i:04d}.png", age_s=None)
    (tmp_path / "later").mkdir()
    gen = scan_tree(tmp_path)
    first = next(gen)
    assert first.rel == "a.png"
    touch(tmp_path, "big/9999-late.png", age_s=None)
    touch(tmp_path, "later/late.png", age_s=None)
    rest = entries(gen)
    assert rest[-2:] == ["big/9999-late.png", "later/late.png"]
    assert len(rest) == 302


def test_bad_root_and_bad_globs_fail_at_call_time(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan_tree(tmp_path / "nope")
    f = touch(tmp_path, "file.png")
    with pytest.raises(NotADirectoryError):
        scan_tree(f)
    with pytest.raises(ValueError):
        scan_tree(tmp_path, include=["[unclosed"])


def test_unreadable_directory_is_reported_and_the_walk_goes_on(tmp_path):
    work = Path(tempfile.mkdtemp(prefix="scan-perm-"))      # /tmp/pytest-of-root is 0700
    try:
        work.chmod(0o755)
        touch(work, "a/x.png")
        touch(work, "locked/secret.png")
        touch(work, "z/y.png")
        (work / "locked").chmod(0)

        def walk():
            return [f"{i.rel} {getattr(i, 'code', 'entry')}" for i in scan_tree(work)]

        out = walk() if os.geteuid() != 0 else run_as_nobody(walk)
        if out and out[0].startswith("child-error"):
            pytest.skip(f"running as root and could not drop privileges: {out[0]}")
        assert out == ["a/x.png entry", "locked unreadable", "z/y.png entry"]
    finally:
        (work / "locked").chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)


def test_a_folder_listed_but_not_searchable_is_one_problem_not_one_a_file(tmp_path):
    # r without x (a chmod -R 644 on a tree): its names can be listed, none can be opened; before,
    # each of its scans was a problem of its own ("cannot stat"), a line each in the cron mail
    work = Path(tempfile.mkdtemp(prefix="scan-perm-"))      # /tmp/pytest-of-root is 0700
    try:
        work.chmod(0o755)
        touch(work, "a/x.png")
        for i in range(5):
            touch(work, f"flat/s{i}.png")
        touch(work, "z/y.png")
        (work / "flat").chmod(0o644)

        def walk():
            return [f"{i.rel} {getattr(i, 'code', 'entry')} {getattr(i, 'reason', '')}" for i in scan_tree(work)]

        out = walk() if os.geteuid() != 0 else run_as_nobody(walk)
        if out and out[0].startswith("child-error"):
            pytest.skip(f"running as root and could not drop privileges: {out[0]}")
        assert [line.split(" ")[:2] for line in out] == [["a/x.png", "entry"], ["flat", "unreadable"],
                                                         ["z/y.png", "entry"]], out
        assert "its 5 entries were not seen" in out[1] and "x, search, permission" in out[1]
    finally:
        (work / "flat").chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)


def test_the_input_folder_gone_or_replaced_mid_walk_is_the_walks_last_word(tmp_path):
    # the entries not yet met vanish with it, which the walk takes in silence for one file: so the
    # walk says at its end that its root is not the folder it began in (moved, or a share unmounted)
    root = tmp_path / "root"
    for i in range(3):
        touch(root, f"d{i}/a.png")
    items = scan_tree(root)
    assert isinstance(next(items), ScanEntry)
    root.rename(tmp_path / "moved")
    rest = list(items)
    assert entries(rest) == [] and problems(rest) == {".": "input_gone"}
    assert "is gone" in rest[-1].reason and str(root) in rest[-1].reason

    (tmp_path / "moved").rename(root)
    items = scan_tree(root)
    next(items)
    root.rename(tmp_path / "moved2")
    root.mkdir()                                          # an empty mount point where the share was
    assert problems(list(items)) == {".": "input_gone"}
    assert problems(scan_tree(root)) == {}                # a walk that begins there is whole
