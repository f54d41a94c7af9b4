"""``status`` and ``verify``: what the state store and the output tree say, for people.

``status`` only reads (it never takes the run lock, so it works while a run is going).
``verify`` audits the output tree against the state: a ``done`` file whose outputs are missing,
truncated (the ``.txt`` differs from the text recorded in the ``.json``) or unparsable, and
outputs whose source file is gone. Every configured output is checked: the ``.txt`` and
``.json`` as above, ALTO, hOCR, PDF, PAGE and METS by ``formats.check`` (present, parseable,
one page per page of the result; the PDF's text layer holds every word of the result). With ``requeue`` (it takes the lock) a file whose ``.json`` is
missing or broken goes back to ``pending`` (the next run redoes it, an API call per page: the
answers are kept in the ``.json``); a file whose ``.json`` is a complete record but whose ``.txt``
or an archival output is missing or broken keeps ``done`` and loses that output from its record,
so the next run rewrites it from the ``.json`` with no API call.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.formats import SUFFIXES
from pipeline.formats.check import CHECKS, pdf_flavour_problem
from pipeline.formats.writer import expected_outputs
from pipeline.formats.output import JSON_SUFFIX, output_path, output_paths, source_rel_for
from pipeline.run.adopt import sound_record
from pipeline.run.cronlog import one_line
from pipeline.run.outage import NOT_COUNTED
from pipeline.run.state import FAILED_STATES, FILE_STATES, StateStore
from pipeline.run.tree import in_tree


def status_report(config: Config, *, failures_limit: int = 20) -> dict[str, Any]:
    if not config.state_file.exists():
        return {"state_file": str(config.state_file), "files_by_state": {}, "last_run": None, "failures": []}
    state = StateStore(config.state_file)
    try:
        counts = state.count_by_state()
        member = in_tree(config)   # a failed file since deleted, renamed or excluded is no failure of the tree
        recorded = list(state.iter_files(FAILED_STATES))
        failed = [{"path": r.rel, "state": r.state, "code": r.error_code, "reason": r.error, "failed_runs": r.failures}
                  for r in recorded if member(r.rel)]
        return {
            "state_file": str(config.state_file),
            "files_by_state": {s: counts.get(s, 0) for s in FILE_STATES if counts.get(s, 0)},
            "total": sum(counts.values()),
            "last_run": state.last_run(),
            "not_counted_outage": state.count_forgiven(NOT_COUNTED),
            "failures": failed[:failures_limit],
            "failures_total": len(failed),
            "failures_gone_from_tree": len(recorded) - len(failed),
            "quarantined": [f["path"] for f in failed if f["state"] == "quarantined"],
            "possible_duplicate_submits": state.possible_duplicates(),
            "cost": {"by_run": state.spend_by_run(), "by_day": state.spend_by_day(),
                     "last_plan": state.last_plan(), "free": config.embedded},
        }
    finally:
        state.close()


def format_status(report: dict[str, Any]) -> str:
    lines = [f"state: {report['state_file']}"]
    if not report.get("files_by_state"):
        lines.append("no files recorded yet (no run has happened)")
        return "\n".join(lines)
    lines.append(f"files: {report['total']}  " + "  ".join(f"{k}={v}" for k, v in report["files_by_state"].items()))
    run = report.get("last_run")
    if run and run.get("exit_code") is None:   # not "exit None": say what it can mean
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run["started_at"]))
        lines.append(f"last run: #{run['id']} started {started}, no exit recorded: still running, or it was "
                     "killed (kill -9, out of memory, power) before it could finish; the next run resumes it")
    elif run:
        lines.append(f"last run: #{run['id']} exit {run['exit_code']} outcomes {((run.get('summary') or {}).get('outcomes'))}")
        if (run.get("summary") or {}).get("stop_reason"):
            lines.append(f"  stopped early: {one_line(run['summary']['stop_reason'])}")
    if report.get("not_counted_outage"):
        lines.append(f"not counted as failed: {report['not_counted_outage']} files failed on the API while it was "
                     "away (pending, no strike; the next run takes them)")
    if report["failures_total"]:
        lines.append(f"failures ({report['failures_total']}, first {len(report['failures'])}):")
        lines += [f"  {one_line(f['path'])}: {f['state']} [{f['code']}] {one_line(str(f['reason']))}"
                  for f in report["failures"]]
    if report.get("failures_gone_from_tree"):
        lines.append(f"failed earlier, no longer in the input tree (deleted, renamed or excluded; not counted): "
                     f"{report['failures_gone_from_tree']}")
    if report["quarantined"]:
        lines.append(f"quarantined ({len(report['quarantined'])}): rerun with --retry-failed to try them again")
    if report["possible_duplicate_submits"]:
        lines.append(f"possible duplicate submits: {len(report['possible_duplicate_submits'])}")
    lines += _format_cost(report.get("cost") or {})
    return "\n".join(lines)


def _format_cost(cost: dict[str, Any]) -> list[str]:
    """Pages submitted and their quoted cost per run and per day; the last plan's estimate."""
    lines = []
    if cost.get("free"):  # the embedded server: no money to show, only what it read
        pages = sum(d["pages"] for d in cost.get("by_day") or ())
        return [f"cost: free: the embedded server reads the pages on this machine (no account, nothing is charged)"
                f"{f'; {pages} pages sent to it so far (pages taken from a PDF text layer are not sent)' if pages else ''}"]
    if cost.get("by_day"):
        lines.append("spent by day (pages, quoted USD): " + ", ".join(
            f"{d['day']} {d['pages']} pages {d['cost']:.4f}" for d in cost["by_day"]))
    if cost.get("by_run"):
        lines.append("spent by run: " + ", ".join(
            f"#{r['run_id']} {r['pages']} pages {r['cost']:.4f}" for r in cost["by_run"]))
    plan = cost.get("last_plan")
    if plan:
        cost_said = "cost unknown" if plan["estimated_cost"] is None else f"estimated {plan['estimated_cost']:.4f} USD"
        lines.append(f"last plan ({plan['at']}): {plan['pages_to_send']} pages to send, {cost_said}")
    return lines


@dataclass
class VerifyResult:
    checked: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    requeued: int = 0
    regenerate: int = 0      # files whose archival outputs the next run rewrites from the .json
    # done files whose source is gone, outputs sound: listed, not a problem (an archive's results
    # outlive a tidy-up of its scans, operations.md), so a tree whose scans are moved away after
    # their OCR does not make every nightly verify exit 1
    sources_gone: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_outputs(output_root: Path, rel: str) -> tuple[str | None, dict | None]:
    """(the problem of the ``.txt``/``.json`` pair or None, the parsed ``.json`` when sound)."""
    txt, js = output_paths(output_root, rel)
    if not js.exists() or not txt.exists():
        return "missing output (" + ", ".join(p.name for p in (txt, js) if not p.exists()) + ")", None
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unparsable .json output: {exc}", None
    try:
        text = txt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable .txt output: {exc}", None
    if not isinstance(doc, dict) or doc.get("text") != text:
        return "truncated or altered .txt output (differs from the text recorded in the .json)", None
    return None, doc


def _check_archival(config: Config, rel: str, doc: dict) -> dict[str, str]:
    """Configured ALTO/hOCR/PDF/PAGE/METS outputs of a file with a sound ``.json`` (``doc``): name -> problem."""
    names = [n for n in config.outputs if n in CHECKS]
    if not names:
        return {}
    problems = {}
    for name in names:
        path = output_path(config.output, rel, SUFFIXES[name])
        problem = (f"missing {name} output ({path.name})" if not path.exists()
                   else CHECKS[name](path, doc))
        if problem is None and name == "pdf":
            problem = pdf_flavour_problem(path, config.pdf.pdfa)
        if problem:
            problems[name] = problem
    return problems


def verify(config: Config, state: StateStore, *, requeue: bool = False) -> VerifyResult:
    result = VerifyResult()
    known: set[str] = set()
    for rec in state.iter_files(("done",)):
        result.checked += 1
        known.add(rec.rel)
        problem, doc = _check_outputs(config.output, rec.rel)
        if problem is None and not (config.input / rec.rel).exists():
            result.sources_gone.append(rec.rel)
            continue
        if problem is not None and sound_record(config.output, rec.rel) is not None:
            # only the .txt is lost or altered: the .json holds the result, so it is rewritten
            # from it, free (requeued, the file was paid for again: the pages' answers are kept
            # in the .json, not in the state store)
            result.problems.append({"path": rec.rel, "problem": problem, "remedy": "regenerate"})
            if requeue:
                drop = set(expected_outputs(config.output, rec.rel, ["txt"]))
                state.set_file(rec.rel, "done", outputs=[o for o in rec.outputs if o not in drop],
                               done_at=rec.done_at)
                result.regenerate += 1
            continue
        if problem is not None:
            result.problems.append({"path": rec.rel, "problem": problem, "remedy": "redo"})
            if requeue:
                state.set_file(rec.rel, "pending", work_key=None, error=f"requeued by verify: {problem}")
                result.requeued += 1
            continue
        broken = _check_archival(config, rec.rel, doc)
        for name, why in broken.items():
            result.problems.append({"path": rec.rel, "problem": why, "remedy": "regenerate"})
        if broken and requeue:
            drop = set(expected_outputs(config.output, rec.rel, list(broken)))
            state.set_file(rec.rel, "done", outputs=[o for o in rec.outputs if o not in drop],
                           done_at=rec.done_at)
            result.regenerate += 1
    for dirpath, dirnames, filenames in os.walk(config.output):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") and name.endswith(".tmp"):
                result.problems.append({"path": path.relative_to(config.output).as_posix(),
                                        "problem": "leftover temporary file from an interrupted write"})
                continue
            if not name.endswith(JSON_SUFFIX):
                continue
            rel = source_rel_for(config.output, path)
            if rel and rel not in known and not (config.input / rel).exists():
                result.problems.append({"path": rel, "problem": "output whose source file is gone"})
    return result
