"""Command line: ``run``, ``plan``, ``serve``, ``status``, ``verify``, ``models``, ``init``; every path ends in an ExitCode.

Each command maps its failure kinds onto the one exit-code table (``exitcodes.ExitCode``) so a
scheduler can act on the outcome without parsing text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Sequence

from pipeline import __version__
from pipeline.config import ConfigError, load_config
from pipeline.exitcodes import ExitCode
from pipeline.run.crashpoints import crashpoint


# Two or three examples at the end of each command's --help (argparse epilog, kept as written).
EXAMPLES = {
    None: """examples:
  python -m pipeline init ~/ocr --input /srv/scans   # a commented config for a new archive
  python -m pipeline run ~/ocr/config.yaml           # OCR every image under its input
  python -m pipeline status ~/ocr/config.yaml        # what is done, failed, quarantined

exit codes: 0 ok, 1 files failed, 2 config error, 3 stopped early, 4 locked,
5 auth or balance, 6 API unreachable, 70 internal error (docs/operations.md)""",
    "run": """examples:
  python -m pipeline run config.yaml                       # resume where the last run stopped
  python -m pipeline run config.yaml --max-runtime 19800   # a cron window: stop after 5.5 h (exit 3)
  python -m pipeline run config.yaml --retry-failed        # try failed and quarantined files again""",
    "serve": """examples:
  python -m pipeline serve --token dev-token                          # RapidOCR on 127.0.0.1:8000
  python -m pipeline serve --engine fast --port 0 --token t --admin   # instant fake engine, any port
  python -m pipeline serve --token t --fault http_429=3 --profile basic   # a rate-limited test bed""",
    "plan": """examples:
  python -m pipeline plan config.yaml                 # what a run would send, skip and cost; submits nothing
  python -m pipeline plan config.yaml --limit 500     # a sample of 500 files, scaled to the whole tree
  python -m pipeline plan config.yaml --max-cost 20   # which cap would stop the run""",
    "status": """examples:
  python -m pipeline status config.yaml          # counts per state, last run, failures
  python -m pipeline status config.yaml --json   # the same for a script""",
    "verify": """examples:
  python -m pipeline verify config.yaml             # exit 1 if an output is missing or broken
  python -m pipeline verify config.yaml --requeue   # set broken files back to pending for the next run""",
    "models": """examples:
  python -m pipeline models config.yaml                               # the embedded server's models
  DEAPI_API_KEY=... python -m pipeline models deapi.yaml              # deAPI's img2txt models""",
    "init": """examples:
  python -m pipeline init                                         # ./config.yaml, asks for the folders
  python -m pipeline init ~/ocr --input /srv/scans --output /srv/ocr   # no questions
  python -m pipeline init archive.yaml --input scans              # output defaults to ./out""",
}


def _sub(sub, name: str, **kw) -> argparse.ArgumentParser:
    return sub.add_parser(name, epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description="Batch folder OCR through deAPI's img2txt (or the embedded server).",
                                     epilog=EXAMPLES[None], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = _sub(sub, "run", help="OCR every image under the configured input directory")
    run.add_argument("config", help="path to config.yaml")
    run.add_argument("--force", action="store_true", help="redo every file, even those already done")
    run.add_argument("--retry-failed", action="store_true",
                     help="try permanently failed, rejected and quarantined files again")
    run.add_argument("--max-runtime", type=float, metavar="SECONDS",
                     help="stop taking new files after this long (overrides max_runtime_s)")
    run.add_argument("--input", metavar="DIR", help="override the config's input directory (relative: to this folder)")
    run.add_argument("--output", metavar="DIR", help="override the config's output directory (relative: to this folder)")
    run.add_argument("--progress", choices=("auto", "bar", "log", "off"), help="override progress")
    _cap_arguments(run)

    plan = _sub(sub, "plan", help="a dry run: files and pages to send, skipped, rejected, and the cost")
    plan.add_argument("config", help="path to config.yaml")
    plan.add_argument("--json", action="store_true", help="one JSON document for scripts")
    plan.add_argument("--limit", type=int, metavar="N", help="prepare only the first N files and scale up")
    plan.add_argument("--force", action="store_true", help="plan as run --force would (redo everything)")
    plan.add_argument("--retry-failed", action="store_true", help="plan as run --retry-failed would")
    plan.add_argument("--input", metavar="DIR", help="override the config's input directory (relative: to this folder)")
    plan.add_argument("--output", metavar="DIR", help="override the config's output directory (relative: to this folder)")
    _cap_arguments(plan)

    serve = _sub(sub, "serve", help="run the deAPI-compatible OCR server")
    from pipeline.server.cli import add_serve_arguments
    add_serve_arguments(serve)

    status = _sub(sub, "status", help="counts per state, last run, failures and quarantine")
    status.add_argument("config", help="path to config.yaml")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    verify = _sub(sub, "verify", help="audit the output tree against the state")
    verify.add_argument("config", help="path to config.yaml")
    verify.add_argument("--requeue", action="store_true", help="set broken files back to pending")
    verify.add_argument("--json", action="store_true", help="one JSON document for scripts")

    models = _sub(sub, "models", help="list the API's img2txt models and their limits")
    models.add_argument("config", help="path to config.yaml")

    init = _sub(sub, "init", help="write a commented config.yaml for a new archive")
    init.add_argument("dir", nargs="?", default=".", metavar="DIR",
                      help="where config.yaml goes (default: here); a name ending in .yaml is the file itself")
    init.add_argument("--input", metavar="DIR", help="the folder of scans (asked on a terminal when left out)")
    init.add_argument("--output", metavar="DIR",
                      help="the folder for the results (default: out/ beside the config)")
    return parser


def _cap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pages", type=int, metavar="N", help="override budget.max_pages_per_run")
    parser.add_argument("--max-cost", type=float, metavar="USD", help="override budget.max_cost_per_run")
    parser.add_argument("--max-cost-per-day", type=float, metavar="USD", help="override budget.max_cost_per_day")


# command-line flag (argparse's dest) -> the config key it overrides
FLAG_KEYS = (("max_runtime", "max_runtime_s"), ("input", "input"), ("output", "output"),
             ("progress", "progress"), ("max_pages", "budget.max_pages_per_run"),
             ("max_cost", "budget.max_cost_per_run"), ("max_cost_per_day", "budget.max_cost_per_day"))


def _overrides(args: argparse.Namespace) -> dict:
    out = {}
    for flag, key in FLAG_KEYS:
        value = getattr(args, flag, None)
        if value is not None:
            # A folder typed on the command line is the shell's: relative to where the command
            # runs, as `init --input` takes it (the file's own paths are against the file's folder).
            out[key] = os.path.abspath(os.path.expanduser(value)) if flag in ("input", "output") else value
    return out


def _named_by_flag(message: str, args: argparse.Namespace) -> str:
    """A config error about a value the command line gave names the flag that gave it: a user who
    typed ``--max-cost -1`` looks for ``--max-cost``, not for a key their file does not have."""
    for flag, key in FLAG_KEYS:
        if getattr(args, flag, None) is not None and message.startswith(f"{key}:"):
            return f"--{flag.replace('_', '-')} ({key}){message[len(key):]}"
    return message


def _interrupted_outside_the_run(said: ExitCode | None) -> int:
    """A Ctrl-C the run's own handlers did not see: it came before they were set, or after the
    run had ended (its report written) while asyncio waited for a worker thread. Every state
    write is a committed transaction, so nothing is lost by leaving at once: no traceback, no
    second wait for the threads at exit. A run that has said its exit code (``said``: its last
    line, ``exit 1 (FILES_FAILED)``) leaves with that code: its outcome is decided and reported,
    and a scheduler must read what the log says (before, it got 3 for a run whose log said 1)."""
    if said is None:
        print("pipeline: second signal: stopping now (state is consistent)", file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(said) if said is not None else ExitCode.STOPPED_EARLY)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for bad usage, 0 for --help
        return int(exc.code or 0)
    crashpoint("cli_start")
    stamped = False
    if args.command == "run":  # a cron log: every line with its time and the run's id (not on a terminal)
        from pipeline.run.cronlog import StampedStream, for_stderr
        sys.stderr = for_stderr(sys.stderr)
        stamped = isinstance(sys.stderr, StampedStream)
    handler = logging.StreamHandler()
    if args.command in ("serve", "run"):
        # A repeated warning is said once a minute (pipeline/quietlog.py): in serve, a database
        # outage's retries; in run, the webhook receiver refusing every delivery (a wrong secret:
        # 76 lines in 7 s for 5 files, each of deAPI's retries of each job a line)
        from pipeline.quietlog import RepeatFilter
        handler.addFilter(RepeatFilter())
    # the process's own handler: a no-op when logging is already set up (pytest's handlers stay as they are)
    # a stamped cron log has its UTC time at the start of each line already: not a second, local one
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format=("" if stamped else "%(asctime)s ") + "%(levelname)s %(name)s: %(message)s",
                        handlers=[handler])
    config = None
    try:
        if args.command == "serve":
            from pipeline.server.cli import serve_from_args
            return serve_from_args(args)
        if args.command == "init":
            from pipeline.init_config import run_init
            return run_init(args.dir, args.input, args.output)
        try:
            config = load_config(args.config, _overrides(args))
        except ConfigError as exc:
            print(f"pipeline: config error: {_named_by_flag(str(exc), args)}", file=sys.stderr)
            return ExitCode.CONFIG_ERROR
        if args.command == "run":
            from pipeline.run.runner import Runner
            runner = Runner(config, force=args.force, retry_failed=args.retry_failed, config_path=args.config)
            try:
                return int(asyncio.run(runner.run()))
            except KeyboardInterrupt:
                return _interrupted_outside_the_run(runner.exit_said)
        if args.command == "plan":
            from pipeline.run.plan import run_plan
            if args.limit is not None and args.limit < 1:
                print("pipeline: --limit: must be at least 1", file=sys.stderr)
                return ExitCode.CONFIG_ERROR
            return asyncio.run(run_plan(config, limit=args.limit, as_json=args.json, force=args.force,
                                        retry_failed=args.retry_failed, stream=sys.stdout))
        if args.command == "status":
            from pipeline.run.audit import format_status, status_report
            report = status_report(config)
            print(json.dumps(report, indent=2, default=str) if args.json else format_status(report))
            return ExitCode.OK
        if args.command == "verify":
            return _verify(config, args)
        if args.command == "models":
            return asyncio.run(_models(config))
    except KeyboardInterrupt:   # a Ctrl-C or SIGTERM in plan, status, verify or models: nothing half done
        print(f"pipeline: {args.command} stopped by a signal"
              + ("; nothing was submitted, no plan printed" if args.command == "plan" else ""), file=sys.stderr)
        return ExitCode.STOPPED_EARLY
    except BrokenPipeError:
        # The reader closed our output (`pipeline plan cfg | head`): its choice, not a bug. Point
        # stdout at /dev/null so the interpreter's final flush does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:  # a bug: exit 70 with the traceback in a file, never 1 (cron reads 1 as routine)
        from pipeline.run.writable import cannot_write, cannot_write_advice
        why = cannot_write(exc, config)
        if why is not None:   # a full disk, a read-only file system, a denied folder: a person's fix, not a bug
            print(f"pipeline: {cannot_write_advice(why)}", file=sys.stderr)
            return ExitCode.CONFIG_ERROR
        from pipeline.crashlog import report_crash
        return report_crash(config.control_dir if config is not None else None, args.command)
    return ExitCode.CONFIG_ERROR


def _verify(config, args) -> int:
    from pipeline.run.audit import verify
    from pipeline.run.lock import LockHeld, RunLock
    from pipeline.run.state import StateStore

    if not config.state_file.exists():
        print(f"pipeline: no state at {config.state_file}: nothing to verify")
        return ExitCode.OK
    lock = RunLock(config.state_file.with_name(config.state_file.name + ".lock"), who="verify --requeue")
    try:
        if args.requeue:
            lock.acquire()
    except LockHeld as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return ExitCode.LOCKED
    state = StateStore(config.state_file)
    try:
        result = verify(config, state, requeue=args.requeue)
    finally:
        state.close()
        lock.release()
    if args.json:
        print(json.dumps({"checked": result.checked, "problems": result.problems, "requeued": result.requeued,
                          "regenerate": result.regenerate, "sources_gone": result.sources_gone}, indent=2))
    else:
        gone = len(result.sources_gone)
        print(f"verify: {result.checked} done files checked, {len(result.problems)} problems"
              + (f", {result.requeued} requeued for the next run, {result.regenerate} to have outputs "
                 "regenerated by it (no API call)" if args.requeue else "")
              + (f"; {gone} whose source file is gone (outputs kept, not a problem)" if gone else ""))
        from pipeline.run.cronlog import one_line
        for p in result.problems:
            print(f"  {one_line(p['path'])}: {p['problem']}")
        for rel in result.sources_gone:
            print(f"  {one_line(rel)}: source file is gone (outputs kept)")
    return ExitCode.OK if result.ok else ExitCode.FILES_FAILED


async def _models(config) -> int:
    from contextlib import AsyncExitStack

    from pipeline.run.runner import Runner, StartupError
    from pipeline.run.client_setup import client_settings_from_config
    from pipeline.deapi import DeapiClient
    from pipeline.deapi import errors as api_errors

    runner = Runner(config)
    async with AsyncExitStack() as stack:
        try:
            base_url, token, _ = await runner.open_api_endpoint(stack)
        except StartupError as exc:
            print(f"pipeline: {exc}", file=sys.stderr)
            return exc.code
        api = await stack.enter_async_context(DeapiClient(base_url, token, client_settings_from_config(config)))
        try:
            models = await api.list_models("img2txt")
        except api_errors.AuthError as exc:
            print(f"pipeline: {exc.reason}", file=sys.stderr)
            return ExitCode.AUTH_OR_BALANCE
        except (api_errors.TransportError, api_errors.ServerError) as exc:
            print(f"pipeline: {exc.reason}", file=sys.stderr)
            return ExitCode.API_UNREACHABLE
        for m in models:
            lim = m.limits
            size = (f"{lim.min_width}-{lim.max_width} x {lim.min_height}-{lim.max_height} px" if lim else "no limits")
            print(f"{m.slug}\t{m.name}\t{size}")
    return ExitCode.OK
