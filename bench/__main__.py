"""``make bench``: run every benchmark, print the figures, and write them into docs/benchmarks.md.

Each benchmark module prints one JSON object per line; this driver runs them one after the
other in fresh processes (so one's memory does not count against another's), keeps every JSON
line, prints a table of figures against their targets, and replaces the block between the
``BENCH`` markers in docs/benchmarks.md with that table and the machine it ran on.

``python -m bench --quick`` runs smaller sizes (for a quick look; the docs keep full runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "docs" / "benchmarks.md"  # the page holding the BENCH markers
RESULTS = ROOT / "bench" / "results.json"  # the last figures of every module, merged across runs
START, END = "<!-- BENCH:START -->", "<!-- BENCH:END -->"

# module, full args, quick args
SUITE = [
    ("bench.pipeline_runs", [], ["--files", "400", "--rerun-files", "10000"]),
    ("bench.prepare_big_jpeg", [], []),
    ("bench.walk_tree", [], ["--entries", "100000"]),
    ("bench.ocr_engines", [], ["--limit", "3"]),
    ("bench.ocr_speed", ["--workers"], ["--pages", "2", "--repeat", "1", "--settings", "default", "before",
                                        "--workers", "--rounds", "1"]),
    ("bench.fleet", [], ["--jobs", "200", "--pages", "3"]),
    ("bench.output_formats", [], ["--files", "5", "--repeat", "1", "--skip-rapidocr"]),
    ("bench.pdf_render", [], ["--pages", "5,20"]),
    ("bench.control", [], ["--quick"]),
    ("bench.price_buckets", [], []),
    ("bench.startup", [], ["--repeat", "2"]),
    ("bench.polling_tail", [], ["--quick"]),
    ("bench.word_geometry", [], ["--quick"]),
    ("bench.hosted_strips", [], ["--quick"]),
    ("bench.strip_cer", [], ["--quick", "--dev", "2"]),
    ("bench.straighten", [], ["--quick"]),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run_module(module: str, args: list[str]) -> list[dict]:
    print(f"\n=== {module} {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True, capture_output=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stdout.write(proc.stderr[-3000:])
        return [{"bench": module, "error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-500:]}]
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def _fmt(value: object) -> str:
    return "–" if value is None else str(value)


def _by(r: dict, client: str) -> dict:
    return next((x for x in r.get("rows", []) if x["client"] == client), {})


def hosted_rows(r: dict, add) -> None:
    """The hosted model's scenario (bench/hosted_strips.py): one block of rows per mode."""
    for row in r["rows"]:
        m, mode = row["measured_run"], row["mode"]
        if mode == "polling":
            used = (m.get("polling") or {}).get("gap_share_used")
            mode = (f"polling (bound {row['gap_share']}, used {used}, status calls/job "
                    f"{row.get('status_calls_per_job') or 'from the plan'})")
        add(f"hosted model, {mode}: A4 300 dpi, {r['limit_px']} px limit, premium, {r['job_s'][0]}-{r['job_s'][1]} s "
            f"jobs, {m['pages']} pages, {row.get('in_flight', r['in_flight'])} in flight (pages/min ÷ an ideal "
            f"client's on the same jobs)"
            f"{' - ' + r['note'] if r['note'] else ''}",
            f"{row['pages_per_min']} vs {row['ideal_pages_per_min']} = {row['of_ideal']} (formula min(rate, C/L): "
            f"{row['of_formula']}; client {m.get('client_cpu_s')} CPU-s)", ">= 0.95", row["of_ideal"] >= 0.95)
        add("… API calls per strip (inline results)", row["api_calls_per_strip"], "<= 2.1",
            row["api_calls_per_strip"] <= 2.1)
        add("… strips per page", row["strips_per_page"], "–", None)
        add("… refused jobs per 1,000 pages after the limit is learned",
            f"{row['refused_per_1000_pages_after_learning']} (learning run: {row['learning_run']['refused_jobs']} "
            f"refused, limit {row['learning_run']['learned']} px)", "<= 1",
            row["refused_per_1000_pages_after_learning"] <= 1)
        add("… lateness p99 / max (s), max ÷ job time",
            f"{m['lateness_p99_s']} / {m['lateness_max_s']}, {m['lateness_share_max']}", "max <= 0.25 of the job",
            m["lateness_share_max"] <= 0.25)


def control_rows(r: dict, add) -> None:
    """The control scenarios (bench/control.py): ratios against the oracle and naive clients."""
    sc = r.get("scenario")
    if "error" in r or "skipped" in r:
        add(f"control: {sc}", r.get("error") or r.get("skipped"), "runs", None if "skipped" in r else False)
        return
    if sc in ("steady", "lognormal", "queueing"):
        p, n = _by(r, "pipeline"), _by(r, "naive")
        late = p.get("lateness") or {}
        what = {"steady": "job time 0.5 s", "lognormal": "log-normal job times (median 2 s, p95 10 s)",
                "queueing": "queueing server (2 engine slots x 0.3 s)"}[sc]
        measured = (f"{r['pipeline_vs_oracle']} of the oracle, {r['pipeline_vs_naive']} of naive; "
                    f"{p.get('api_calls_per_file')} calls/file (naive {n.get('api_calls_per_file')}); "
                    f"lateness mean {late.get('mean')} s, p95 {late.get('p95')} s")
        if sc == "steady":
            add(f"{what}, {p.get('files')} files, 64 in flight", measured, ">= 0.95 of oracle, <= 2.1 calls/file",
                r["pipeline_vs_oracle"] >= 0.95 and p.get("api_calls_per_file", 9) <= 2.1)
        elif sc == "lognormal":
            add(f"{what}, {p.get('files')} files", measured, "> naive with <= its calls; >= 0.85 of oracle",
                r["pipeline_vs_naive"] > 1 and p.get("api_calls_per_file", 9) <= n.get("api_calls_per_file", 0)
                and r["pipeline_vs_oracle"] >= 0.85)
        else:
            add(f"{what}, {p.get('files')} files, 64 in flight", measured, ">= 0.9 of oracle, lateness p95 <= 0.5 s",
                r["pipeline_vs_oracle"] >= 0.9 and (late.get("p95") or 9) <= 0.5)
        naive_late = n.get("lateness") or {}
        add("… against naive: calls/file, lateness p95", f"{p.get('api_calls_per_file')} vs "
            f"{n.get('api_calls_per_file')}; {late.get('p95')} vs {naive_late.get('p95')} s", VS_NAIVE,
            as_good_as_naive(p.get("api_calls_per_file", 9e9), late.get("p95"), n.get("api_calls_per_file", 0),
                             naive_late.get("p95")))
    elif sc == "storm":
        pairs = r.get("pair_ratios")
        add("20 % random 429 + 5 % 5xx: adaptive ÷ fixed window"
            + (f" (median of {len(pairs)} pairs: {', '.join(map(str, pairs))})" if pairs else ""),
            r["adaptive_vs_fixed"], ">= 0.8", r["adaptive_vs_fixed"] >= 0.8)
    elif sc == "premium":
        add("premium limit 300 submits/min", f"{r['submits_per_min']}/min = {r['of_limit']}, "
            f"{r['share_429']:.2%} of calls 429", ">= 0.95, <= 1 % 429", r["of_limit"] >= 0.95 and r["share_429"] <= 0.01)
    elif sc == "stop":
        add(f"SIGTERM to a {r['files']:,}-file run with 30 s jobs (grace {r['grace_s']:g} s)",
            f"exit {r['exit']} after {r['seconds_to_exit']} s", "<= grace + 5 s", r["within_grace_plus_5"])
        if "within_grace" in r:   # the README's promise: the stop ends within the grace itself
            add("… the same stop, against the grace itself", f"{r['seconds_to_exit']} s", "<= grace",
                r["within_grace"])
    elif sc == "memory":
        a, b2 = r["rows"][0], r["rows"][1]
        add(f"peak RSS, {a['files']:,} vs {b2['files']:,} files (0.05 s jobs)",
            f"{a['peak_rss_mb']} vs {b2['peak_rss_mb']} MB (+{r['rss_growth_mb']} MB)", "same within 20 MB",
            abs(r["rss_growth_mb"]) <= 20)
        add("first submit, 1,000,000-entry tree with 100 images", f"{r['first_submit_s']} s", "< 1 s",
            r["first_submit_s"] < 1)
    elif sc == "embedded":
        workers = f", {r['workers']} workers" if r.get("workers") else ""
        when = f" ({r['measured']})" if r.get("measured") else ""
        add(f"embedded default on {r['pages']} real pages{workers}: pipeline ÷ engine pool alone{when}",
            f"{r['pipeline_pages_per_min']} vs {r['engine_pages_per_min']} pages/min = {r['pipeline_vs_engine']}",
            ">= 0.9", r["pipeline_vs_engine"] >= 0.9)


VS_NAIVE = "<= naive in calls or lateness p95, the other at most 25 % over"


def as_good_as_naive(calls: float, p95: float | None, naive_calls: float, naive_p95: float | None) -> bool:
    """The planner against a naive 1 s poller: at least as good on one axis, not much worse on the other."""
    if p95 is None or naive_p95 is None:
        return False
    return (calls <= naive_calls and p95 <= 1.25 * naive_p95) or (p95 <= naive_p95 and calls <= 1.25 * naive_calls)


def polling_tail_rows(r: dict, add) -> None:
    """The planner's default bound (max(25 %, 1 s)) against naive, and the share alone's promise."""
    rows = r["rows"]
    jobs = f"{r['mean_s']:g} s ± {r['spread_s']:g} s jobs, {rows['pipeline']['jobs']} jobs in {r['runs']} run(s)"

    def figs(x: dict) -> str:
        return (f"{x['api_calls_per_job']} calls/job, lateness p95 {x.get('lateness_p95_s', '?')} / p99 "
                f"{x['lateness_p99_s']} / max {x['lateness_max_s']} s, max ÷ job time past the first poll "
                f"{x['lateness_max_share_past_first_poll']}")

    p, n = rows["pipeline"], rows["naive"]
    add(f"polling tail, {jobs}: pipeline (gap <= max(25 %, 1 s)); naive 1 s", f"{figs(p)}; naive {figs(n)}",
        VS_NAIVE, as_good_as_naive(p["api_calls_per_job"], p.get("lateness_p95_s"),
                                   n["api_calls_per_job"], n.get("lateness_p95_s")))
    if "share only" in rows:
        s = rows["share only"]
        add("… share only (`lateness_floor_s: 0`, gap <= 25 % of the time)", figs(s), "max ÷ job time <= 0.25",
            s["lateness_max_share_past_first_poll"] <= 0.25)
    if "unbounded" in rows:
        add("… the same planner unbounded", figs(rows["unbounded"]), "–", None)


def straighten_rows(r: dict, add) -> None:
    """Turned and skewed pages (issue 23): the decisions when measured, and per engine the
    variants whose CER stays within 1 point of the upright page's."""
    d = r.get("decisions") or {}
    if any(sum(v.values()) for v in d.values()):
        up, turned, skewed = d["upright"], d["turned"], d["skewed"]
        add(f"straightening, {r['pages']} shared scans: upright pages moved; turned versions turned right; "
            "skewed versions levelled (wrongly)", f"{up['wrong'] + up.get('left', 0)}; {turned['right']} of "
            f"{sum(turned.values())}; {skewed['right']} of {sum(skewed.values())} ({skewed['wrong']})",
            "0 upright moved", up["wrong"] == 0)
    for engine, x in (r.get("ocr") or {}).items():
        by = x["by_variant_auto"]
        turned = [by[k] for k in by if k.startswith("turn")]
        skewed = [by[k] for k in by if k.startswith("skew")]
        share = x["within_1pt_auto"] / x["variants"]
        add(f"turned and skewed versions of the shared scans, {engine}: CER within 1 point of the "
            "upright page's (turned; skewed)", f"{x['within_1pt_auto']} of {x['variants']} = {share:.0%} "
            f"({sum(a for a, _ in turned)}/{sum(b for _, b in turned)}; {sum(a for a, _ in skewed)}/"
            f"{sum(b for _, b in skewed)})", ">= 95 %", share >= 0.95)


def figures_table(rows: list[dict]) -> list[str]:
    """One README row per figure with its target; unknown rows are listed raw."""
    out = ["| figure | measured | target | met |", "|---|---|---|---|"]

    def add(name: str, measured: object, target: str, ok: bool | None) -> None:
        out.append(f"| {name} | {_fmt(measured)} | {target} | {'yes' if ok else ('no' if ok is False else '–')} |")

    for r in rows:
        b = r.get("bench")
        if "error" in r:
            add(f"{b}", r["error"], "runs", False)
        elif b == "throughput":
            add(f"throughput, {r['files']} files, latency {r['latency_s']} s, {r['in_flight']} in flight (files/s ÷ ideal {r['ideal_files_per_s']:.0f})",
                f"{r['files_per_s']} files/s = {r['ratio']}", ">= 0.95", r["ratio"] >= 0.95)
            add("API calls per file, polling, inline results", r["api_calls_per_file"], "<= 2.1", r["api_calls_per_file"] <= 2.1)
        elif b == "webhook":
            add(f"API calls per file, webhook mode ({r['files']} files)", r["api_calls_per_file"], "1 submit + 0 polls",
                r.get("status_polls") == 0)
        elif b == "rate_limited":
            add(f"rate-limited run, {r['limit_per_min']} submits/min (achieved ÷ limit)",
                f"{r['achieved_per_min']}/min = {r['ratio']}", ">= 0.95", r["ratio"] >= 0.95)
            add("429s in that run", r["http_429"], "a handful (<= 5)", (r["http_429"] or 0) <= 5)
        elif b == "daily_limit":
            add(f"daily quota of 50 submits, {r['files']} files", f"exit {r['exit_code']}, {r['done']} done, "
                f"{r['left_for_next_run']} left, {r['http_429']} 429s, {r['seconds']} s",
                "stops at the quota, exit 3, rest pending", r["exit_code"] == 3 and r["jobs_created"] == 50)
        elif b == "rerun":
            add(f"rerun over {r['files']} done files", f"{r['seconds']} s, {r['api_calls']} API calls",
                "< 10 s, 0 calls", r["seconds"] < 10 and r["api_calls"] == 0)
        elif b == "prepare_big_jpeg":
            add(f"prepare a {r['source_mpx']:.0f}-megapixel {r['source_mb']} MB JPEG", f"{r['prepare_s']} s "
                f"(peak {r['prepare_peak_rss_mb']} MB)", "< 1 s", r["prepare_s"] < 1)
            add("… against a full decode + resize", f"{r['speedup']}× faster", ">= 3×", r["speedup"] >= 3)
        elif b == "walk_tree":
            add(f"walk {r['entries']:,} entries", f"peak RSS {r['peak_rss_mb']} MB, first entry after "
                f"{r['first_entry_s']} s, {r['seconds']} s in all", "< 150 MB, first within 1 s",
                r["peak_rss_mb"] < 150 and r["first_entry_s"] < 1)
        elif b == "fleet_jobs":
            add(f"jobs/s through the PostgreSQL store, fast engine, {r['jobs']} jobs, {r['in_flight']} in flight "
                "(1 API + 2 workers ÷ in-memory server)",
                f"{r['fleet_jobs_per_s']} vs {r['memory_jobs_per_s']} jobs/s = {r['ratio']}", "–", None)
        elif b == "fleet_webhooks":
            add(f"webhooks: {r['jobs']} jobs until every job.completed arrived, fleet outbox vs in-memory sender",
                f"{r['fleet_s']} vs {r['memory_s']} s = {r['ratio']}", "–", None)
        elif b == "fleet_pages" and "skipped" in r:
            add("fleet pages/min", r["skipped"], "–", None)
        elif b == "fleet_pages":
            add(f"pages/min, {r['engine']}, {r['pages']} pages: in-memory server; fleet with 1, 2, 4 workers",
                f"{r['memory_pages_per_min']}; {r['workers_1_pages_per_min']}, {r['workers_2_pages_per_min']}, "
                f"{r['workers_4_pages_per_min']}", "1 worker ≈ in-memory (>= 0.8)", r["ratio_1_worker"] >= 0.8)
        elif b == "control":
            control_rows(r, add)
        elif b == "polling_tail":
            polling_tail_rows(r, add)
        elif b == "hosted_strips":
            hosted_rows(r, add)
        elif b == "strip_cer" and "skipped" in r:
            add("strips vs whole page (CER)", r["skipped"], "–", None)
        elif b == "strip_cer":
            rendered = sum(1 for row in r.get("rows", []) if row["page"].startswith("dev_"))
            scaled = any(row["page"].endswith("_x2") for row in r.get("rows", []))
            kind = (f"rendered pages (bench/devset.py{', at 300 dpi' if scaled else ''})" if rendered == r["pages"] else
                    f"pages ({rendered} rendered)" if rendered else "scribe pages")
            for name, what in (("hosted", "hosted-like model (Markdown)"), ("engine", "engine's own text")):
                x = r[name]
                add(f"{kind} over {r['limit_px']} px read in strips ÷ whole, {what}: pages within +0.5 CER "
                    f"points (worst)", f"{x['within_half_point']} of {r['pages']} (worst {x['worst']['page']} "
                    f"{x['worst']['points']:+})" + (f"; over: {', '.join(x['over'])}" if x["over"] else ""),
                    "every page", x["within_half_point"] == r["pages"])
        elif b == "straighten":
            straighten_rows(r, add)
        elif b == "price_buckets":
            add(f"price estimate by size bucket, {r['set']} ({r['pages']} pages, {r['price_requests']} price "
                "requests): largest page error, mean, whole set", f"{r['max_abs_error']:.1%}, "
                f"{r['mean_abs_error']:.1%}, {r['total_error']:+.1%}", f"page <= {r['bound']:.1%}",
                r["max_abs_error"] <= r["bound"])
        elif b == "startup":
            add(f"start to first submit, txt-only run against a loopback server (median of {r['repeat']}): "
                "archival writers loaded when needed ÷ imported up front",
                f"{r['first_submit_s']} vs {r['eager_first_submit_s']} s = {r['time_ratio']}", "< 1", r["time_ratio"] < 1)
            add("… resident memory after the first submit", f"{r['idle_rss_mb']} vs {r['eager_idle_rss_mb']} MB = "
                f"{r['rss_ratio']}", "< 1", r["rss_ratio"] < 1)
        elif b == "output_formats":
            add(f"write step with alto+hocr+pdf vs txt+json ({r['words_per_page']} words/page)",
                f"{r['all_outputs_ms_per_file']} vs {r['txt_json_ms_per_file']} ms/file = {r['render_ratio']}×",
                "well under a page's OCR time", None)
            if "word_box_ratio" in r:
                add("RapidOCR with word boxes ÷ without", f"{r['word_box_ratio']}×", "<= 1.1×", r["word_box_ratio"] <= 1.1)
        elif b == "word_geometry":
            add(f"words for text-only answers, {r['method']}: CPU-s per A4 page at 300 dpi ({r['a4_pages']} pages)",
                f"{r['cpu_s_per_a4_page']} (max {r['cpu_s_max']})", "<= 0.5", r["cpu_s_per_a4_page"] <= 0.5)
            if "scribe_right" in r:
                add(f"… {r['method']}: scribe words placed at IoU >= 0.5 / elsewhere; devset lines placed",
                    f"{r['scribe_right']:.1%} / {r['scribe_wrong']:.1%}; {r['devset_lines_placed']:.1%}",
                    ">= 90 % right", r["scribe_right"] >= 0.9)
                add(f"… {r['method']}: scribe words on another word's box",
                    f"{r['scribe_other']:.2%}", "none", r["scribe_other"] == 0)
        elif b == "word_geometry_run":
            add(f"whole run, truth engine (text only), {r['pages']} A4 pages: alto+hocr (placed) ÷ txt+json; with pdf",
                f"{r['placed_pages_per_s']} vs {r['txt_json_pages_per_s']} pages/s = {r['ratio']}; "
                f"{r.get('with_pdf_pages_per_s')}", "–", None)
        elif b == "pdf_render":
            add(f"PDF pages rendered + prepared at {r['dpi']} dpi ({r['largest']}-page file)",
                f"{r['pages_per_s']} pages/s", "–", None)
            add(f"… peak RSS, {r['largest']} pages ÷ {r['smallest']} pages",
                " / ".join(f"{x['peak_rss_mb']} MB" for x in r["runs"]) + f" = {r['rss_ratio']}",
                "<= 1.10", r["rss_ratio"] <= 1.10)
        elif b in ("ocr_speed", "ocr_speed_workers") and "skipped" in r:
            add("RapidOCR settings", r["skipped"], "–", None)
        elif b == "ocr_speed":
            add(f"RapidOCR setting {r['setting']}, {r['pages']} scribe pages, {r['threads']} thread(s)",
                f"{r['cpu_vs_default']}× the CPU of {r.get('baseline', 'default')}, CER {r['cer_pct']} %", "–", None)
        elif b == "ocr_speed_workers":
            add(f"RapidOCR pool, {r['workers']} worker(s), {r['pages']} scribe pages",
                f"{r['pages_per_min']} pages/min, peak RSS {r['peak_rss_mb_per_worker']} MB a worker",
                ">= 15 pages/min (2 workers, the default)" if r["workers"] == 2 else "–",
                r["pages_per_min"] >= 15 if r["workers"] == 2 else None)
        elif b == "ocr_engines" and "skipped" in r:
            add("OCR accuracy", r["skipped"], "–", None)
        elif b == "ocr_engines":
            target, ok = "–", None
            if r["dataset"] == "scribe" and r["engine"] == "rapidocr":
                target = "CER <= 20 %, F1 ≈ 0.95 (pages/min: the RapidOCR pool row)"  # one engine here, two in the pool
                ok = r["cer_as_output_pct"] <= 20 and r["bag_f1"] >= 0.94
            elif r["dataset"].startswith("dev-") and r["engine"] == "rapidocr":  # issue 11: never worse than row order
                raw = next((x for x in rows if x.get("dataset") == r["dataset"] and x.get("engine") == "rapidocr-raw"), None)
                if raw is not None:
                    target = f"CER <= row order's {raw['cer_as_output_pct']} %"
                    ok = r["cer_as_output_pct"] <= raw["cer_as_output_pct"]
            add(f"OCR {r['engine']} on {r['dataset']} ({r['pages']} pages)",
                f"CER {r['cer_as_output_pct']} %"
                + (f" (rowCER {r['row_cer_pct']} %)" if r.get("row_cer_pct") is not None else "")
                + f", bag F1 {r['bag_f1']}, {r['s_per_page']} s/page", target, ok)
        else:
            measured = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("bench",))
            out.append(f"| {b} | {measured} | see section | – |")
    return out


def merge_results(fresh: dict[str, list[dict]], when: str) -> list[dict]:
    """Replace the stored rows of the modules just run; keep the others (with their date)."""
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for module, rows in fresh.items():
        stored[module] = {"measured": when, "machine": machine(), "rows": rows}
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
    return [row for module, _, _ in SUITE if module in stored for row in stored[module]["rows"]]


def write_readme(rows: list[dict], quick: bool) -> None:
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{README.relative_to(ROOT)} has no BENCH markers; not updated")
        return
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    block = [START, "", "Measured by `make bench`" + (" (quick sizes)" if quick else "")
             + "; each module's figures come from its last run:", ""]
    block += [f"- `{module}`: {stored[module]['measured']}, {stored[module]['machine']}"
              for module, _, _ in SUITE if module in stored]
    block += [""] + figures_table(rows) + ["", END]
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + "\n".join(block) + tail, encoding="utf-8")
    print(f"{README.relative_to(ROOT)} updated ({len(rows)} figures)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--only", nargs="*", help="module names, e.g. bench.pipeline_runs")
    args = ap.parse_args(argv)
    fresh: dict[str, list[dict]] = {}
    for module, full, quick in SUITE:
        if args.only and module not in args.only:
            continue
        fresh[module] = run_module(module, quick if args.quick else full)
    rows = [r for module_rows in fresh.values() for r in module_rows]
    print("\n" + "\n".join(figures_table(rows)))
    if not args.no_readme and not args.quick:
        write_readme(merge_results(fresh, time.strftime("%Y-%m-%d")), args.quick)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
