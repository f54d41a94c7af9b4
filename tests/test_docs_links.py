"""Every relative link and every ``#anchor`` in README.md and docs/*.md resolves.

Why: the README is the front door and docs/ holds the rest; a renamed heading or a moved file
silently breaks the way a reader follows. The check covers every Markdown file in docs/ (new
ones included, with no list to keep up to date) and computes anchors with GitHub's slug rules,
so a link that works here works on GitHub.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target "title") and ![alt](target); the text may hold `code` and nested brackets once.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"", re.I)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/ (found, not listed)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link in a code sample is not a link)."""
    lines, fence = [], None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark[0] * len(mark)
            elif mark.startswith(fence):
                fence = None
            continue
        if fence is None:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, punctuation dropped,
    spaces turned into hyphens (github-slugger: keep letters, marks, digits, ``_``, ``-``)."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text)                       # inline HTML
    text = re.sub(r"(\*\*|__|(?<!\w)[*_]|[*_](?!\w))", "", text)  # emphasis markers
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in " -":
            out.append("-" if ch == " " else ch)
        elif ch == "_" or cat[0] in "LMN":
            out.append(ch)
    return "".join(out)


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: heading slugs (with GitHub's -1, -2 for repeats) and HTML ids."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if m:
            slug = github_slug(m.group(2))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
        found.update(_HTML_ANCHOR.findall(line))
    return found


def links(path: Path) -> list[str]:
    """Every link target in a page's prose (inline links, images, reference definitions)."""
    targets = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        stripped = _CODE_SPAN.sub("", line)
        targets += _LINK.findall(stripped)
        m = _REFDEF.match(stripped)
        if m:
            targets.append(m.group(1))
    return targets


def broken_links(path: Path) -> list[str]:
    """The relative links and anchors of one page that do not resolve, with the reason."""
    problems = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{target}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(dest):
                problems.append(f"{target}: no heading '#{anchor}' in {dest.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_docs_exist_and_the_readme_links_each_of_them() -> None:
    readme_targets = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    docs = [p.relative_to(ROOT).as_posix() for p in markdown_files()[1:]]
    assert "docs/configuration.md" in docs
    assert [d for d in docs if d not in readme_targets] == []


def test_the_readme_stays_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    head = "\n".join(lines[:25])
    assert "make run" in head and "make test" in head


@pytest.mark.parametrize("heading, slug", [
    ("Exit codes and cron", "exit-codes-and-cron"),
    ("`format=json` result", "formatjson-result"),
    ("Validation (422)", "validation-422"),
    ("Design notes (where public sources conflict or are silent)",
     "design-notes-where-public-sources-conflict-or-are-silent"),
    ("Finding files (`pipeline/inputs/scan.py`)", "finding-files-pipelineinputsscanpy"),
    ("Client behaviour: retries, rate limits, polling", "client-behaviour-retries-rate-limits-polling"),
    ("Reruns, crashes, the lock and signals", "reruns-crashes-the-lock-and-signals"),
    ("What's new — 2.0", "whats-new--20"),
    ("snake_case **bold** key", "snake_case-bold-key"),
    ("Straße & Ölmühle", "straße--ölmühle"),
])
def test_slugs_follow_github(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_broken_link_and_a_broken_anchor_are_caught(tmp_path: Path, monkeypatch) -> None:
    tmp_path = tmp_path.resolve()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## Same\n\n## Same\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#title) [ok](a.md#same-1) [ok](#here) [web](https://example.org/x#y)\n"
        "# Here\n\n"
        "```\n[in code](missing.md)\n```\n"
        "`[in a code span](missing.md)`\n"
        "[gone](missing.md) [bad anchor](a.md#nope) [third](a.md#same-2)\n",
        encoding="utf-8")
    assert broken_links(page) == [
        "missing.md: missing.md does not exist",
        "a.md#nope: no heading '#nope' in a.md",
        "a.md#same-2: no heading '#same-2' in a.md",
    ]


@pytest.mark.parametrize("page", ["README.md", "docs/operations.md"])
def test_the_exit_code_tables_match_exitcodes_py(page: str) -> None:
    from pipeline.exitcodes import ExitCode

    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", (ROOT / page).read_text(encoding="utf-8"), re.M)
    assert [(int(code), name) for code, name in rows] == [(int(c), c.name) for c in ExitCode]
