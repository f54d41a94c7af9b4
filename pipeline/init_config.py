"""``pipeline init``: write a commented ``config.yaml`` for a new archive.

Why it walks the dataclasses of ``pipeline/config.py`` instead of holding a template: the
defaults live there once, and the loader fills every key left out from them. A template would
be a second copy that goes stale the day a key is added; walking the dataclasses writes every
key, nested sections included, at the value the loader would use anyway, so the file written
here always loads, and shows a newcomer every knob in one place.

Each key gets a one-line comment: from ``COMMENTS`` below when it has one, else from the
key's own trailing comment in ``config.py``, else a pointer to ``docs/configuration.md``, so
a key added later is still written (and still explained, however briefly).
"""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import sys
import textwrap
import tokenize
from dataclasses import MISSING, Field, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline import __version__
from pipeline.config import Config

CONFIG_NAME = "config.yaml"

# One line per key (dotted), written after its value. Keys missing here fall back to the
# trailing comment of the field in config.py.
COMMENTS = {
    "input": "the tree of scans to OCR (relative paths: against this file's directory)",
    "output": "results mirror the input tree here: a .txt and a .json per image",
    "include": "globs on the path relative to input, matched case-insensitively",
    "exclude": "globs to leave out, e.g. [\"drafts/**\"]",
    "state_path": "the state store; null: <output>/.pipeline/state.sqlite",
    "min_free_mb": "stop submitting while the output's or the state's disk has less free (MB); 0: off",
    "min_file_age_s": "files modified more recently are left for the next run (still being copied)",
    "max_runtime_s": "stop taking new files after this many seconds (a cron window); null: no limit",
    "shutdown_grace_s": "a stop ends within this long (in-flight jobs get it less a tenth, at most 1 s)",
    "progress": "auto (bar on a terminal, log lines under cron) | bar | log | off",
    "log_interval_s": "seconds between progress log lines under cron",
    "api": "where the OCR jobs go",
    "api.base_url": "embedded: the offline server in-process (no token); or https://api.deapi.ai",
    "api.token_env": "environment variable holding the API token (never put the token in this file)",
    "api.model": "must support img2txt; its pixel limits come from /models",
    "api.language": "document language sent to the API",
    "api.format": "text | json (json adds blocks, lines, boxes and confidences to the .json)",
    "api.return_result_in_response": "text inline in the job status (saves a download per page)",
    "api.embedded": "the offline server used when base_url is embedded",
    "api.embedded.engine": "rapidocr (accurate) | tesseract (fast, light) | fast (test engine, no OCR)",
    "api.embedded.workers": "OCR worker processes; each gets cores // workers ONNX Runtime threads",
    "concurrency": "how much runs at once",
    "concurrency.jobs_in_flight": "most OCR jobs submitted and unfinished at once",
    "concurrency.min_jobs_in_flight": "floor of the adaptive limit",
    "concurrency.adaptive": "grow while the API keeps up, shrink on 429s and rising latency",
    "concurrency.prepare_workers": "images decoded and converted at once (Pillow)",
    "timeouts": "seconds",
    "timeouts.connect_s": "to open an HTTP connection",
    "timeouts.read_s": "per HTTP read (an upload of 10 MB on a slow line)",
    "timeouts.job_s": "per job, from submit to a final status; the request id is kept for the next run",
    "retries": "transient errors: 429, 5xx, timeouts, dropped connections",
    "retries.max_attempts": "HTTP attempts per call",
    "retries.backoff_initial_s": "first pause of the jittered exponential backoff",
    "retries.backoff_max_s": "longest pause of the backoff",
    "retries.max_retry_after_s": "a longer Retry-After (a daily limit) stops submitting for this run",
    "retries.max_transient_runs": "runs a file may fail transiently before it is quarantined",
    "retries.outage_failures": "API calls failed in a row (after their retries) that mean the API went away: exit 6, no strike; 0: off",
    "retries.outage_min_s": "... over at least this many seconds (a brief blip is not an outage)",
    "polling": "how job status is polled (the first poll learns from recent job times)",
    "polling.first_poll_s": "first poll before any job time has been learnt",
    "polling.min_interval_s": "shortest pause between polls of one job",
    "polling.max_interval_s": "longest pause between polls of one job",
    "polling.backoff": "once a job outlives its planned polls, each later poll waits this many times longer",
    "polling.status_calls_per_job": "poll budget a job; null: from the plan (basic: 4)",
    "polling.max_lateness_share": "no poll gap over this share of a job's time (0.25: ~4.3 polls for 5-20 s jobs); null: none",
    "polling.lateness_floor_s": "... nor over this many seconds, whichever is longer (a naive poller's spacing)",
    "rate_limits": "pace requests to your deAPI plan instead of running into 429s",
    "rate_limits.plan": "unlimited | basic (5 submits/min, 50/day) | premium (300/min) | custom",
    "rate_limits.submit_per_minute": "custom plan (or an override): img2txt submits per minute",
    "rate_limits.submit_per_day": "custom plan (or an override): img2txt submits per day",
    "rate_limits.status_per_minute": "custom plan (or an override): status polls per minute",
    "rate_limits.status_per_day": "custom plan (or an override): status polls per day",
    "precheck": "every image is checked and made to fit the API before it is sent",
    "precheck.max_upload_bytes": "every upload is made to fit this (the API's 10 MB)",
    "precheck.max_source_pixels": "larger images are rejected as decompression bombs",
    "precheck.jpeg_quality": "starting quality when an image must be re-encoded as JPEG",
    "webhook": "let deAPI push results instead of polling (needs a public HTTPS URL)",
    "webhook.enabled": "true: every submit carries webhook_url; the run still polls when no push comes",
    "webhook.listen_host": "where the receiver binds (your reverse proxy forwards here)",
    "webhook.listen_port": "port of the receiver",
    "webhook.public_url": "the HTTPS URL deAPI calls (your reverse proxy); required when enabled",
    "webhook.secret_env": "environment variable holding the webhook secret (never in this file)",
    "webhook.wait_s": "wait this long for a push, then poll request-status",
}

_PLAIN = re.compile(r"^[A-Za-z0-9_./:~-]+$")


class InitError(Exception):
    """Init cannot write the file (it exists, a folder is missing, an answer is absent)."""


def field_default(f: Field) -> Any:
    """The value the loader uses when the key is left out (MISSING for a required key)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


@lru_cache(maxsize=None)
def _source_comments(cls: type) -> dict[str, str]:
    """Trailing ``# comment`` of each field line in the dataclass's own source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    line_names: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.start[0] not in line_names:
            line_names[tok.start[0]] = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_names:
            found.setdefault(line_names[tok.start[0]], tok.string.lstrip("# ").strip())
    return found


def comment_for(cls: type, dotted: str, name: str) -> str:
    return (COMMENTS.get(dotted) or _source_comments(cls).get(name)
            or f"see docs/configuration.md ({dotted})")


def yaml_value(value: Any) -> str:
    """One scalar as YAML text (strings quoted only when they need it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)  # a JSON string is a valid YAML scalar


def _lines(cls: type, values: dict[str, Any], prefix: str, indent: int) -> list[str]:
    """Every field of ``cls``, each under its one-line comment; nested dataclasses as sections."""
    out: list[str] = []
    pad = "  " * indent
    for f in fields(cls):
        dotted = prefix + f.name
        value = values[dotted] if dotted in values else field_default(f)
        if value is MISSING:
            raise InitError(f"no value for the required key '{dotted}'")
        if indent == 0 and out and is_dataclass(value):
            out.append("")
        out.append(f"{pad}# {comment_for(cls, dotted, f.name)}")
        if is_dataclass(value):
            out.append(f"{pad}{f.name}:")
            nested = {k: v for k, v in values.items() if k.startswith(dotted + ".")}
            nested.update({f"{dotted}.{g.name}": getattr(value, g.name) for g in fields(value)
                           if f"{dotted}.{g.name}" not in nested})
            out += _lines(type(value), nested, dotted + ".", indent + 1)
        elif isinstance(value, (tuple, list)) and value:
            out.append(f"{pad}{f.name}:")
            out += [f"{pad}  - {yaml_value(v)}" for v in value]
        elif isinstance(value, (tuple, list)):
            out.append(f"{pad}{f.name}: []")
        elif isinstance(value, dict):  # a JSON object is a valid YAML flow mapping
            out.append(f"{pad}{f.name}: {json.dumps(value, default=str)}")
        else:
            out.append(f"{pad}{f.name}: {yaml_value(value)}")
    return out


def render_config(values: dict[str, Any]) -> str:
    """The whole commented file: ``values`` (dotted keys, e.g. input/output) over the defaults."""
    head = [
        f"# pipeline configuration, written by `python -m pipeline init` (pipeline {__version__}).",
        "# Every key but input and output is at its default; docs/configuration.md explains each one.",
        "# Keys you delete keep their default. Relative paths are resolved against this file's directory.",
        "# The API token is never stored here: it is read from the variable named by api.token_env.",
        "",
    ]
    return "\n".join(head + _lines(Config, values, "", 0)) + "\n"


def config_path_for(target: str | os.PathLike) -> Path:
    """``DIR`` means ``DIR/config.yaml``; a name ending in .yaml/.yml is the file itself."""
    path = Path(target).expanduser()
    return path if path.suffix.lower() in (".yaml", ".yml") else path / CONFIG_NAME


def path_for_config(given: str, config_dir: Path) -> str:
    """A path typed relative to the working directory, as the config (relative to its own
    directory) must spell it: relative when it lies below the config's directory, else absolute."""
    absolute = Path(os.path.abspath(os.path.expanduser(given)))
    base = Path(os.path.abspath(config_dir))
    return absolute.relative_to(base).as_posix() if absolute.is_relative_to(base) else str(absolute)


def write_config(target: str | os.PathLike, input_dir: str, output_dir: str) -> Path:
    """Write the config for ``input_dir``/``output_dir``; never replaces an existing file."""
    path = config_path_for(target)
    if not Path(input_dir).expanduser().is_dir():
        raise InitError(f"input: {input_dir} is not a directory (give the folder that holds the scans)")
    if path.exists():
        raise InitError(f"{path} already exists; not overwritten (delete it, or choose another DIR)")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_config({"input": path_for_config(input_dir, path.parent),
                          "output": path_for_config(output_dir, path.parent)})
    try:
        with open(path, "x", encoding="utf-8") as fh:  # "x": a file appearing meanwhile is kept
            fh.write(text)
    except FileExistsError:
        raise InitError(f"{path} already exists; not overwritten") from None
    return path


def _ask(prompt: str, default: str | None) -> str:
    answer = input(f"{prompt}{f' [{default}]' if default else ''}: ").strip()
    return answer or default or ""


def run_init(target: str, input_dir: str | None, output_dir: str | None, *, interactive: bool | None = None) -> int:
    """The ``init`` command: ask for what the options left out (on a terminal only), write,
    then load the file with the project's own loader so a file that would not run is never
    reported as written."""
    from pipeline.config import ConfigError, load_config
    from pipeline.exitcodes import ExitCode

    path = config_path_for(target)
    if interactive is None:
        interactive = sys.stdin.isatty()
    default_output = os.path.join(os.path.dirname(os.path.abspath(path)), "out")
    try:
        if path.exists():  # before asking anything
            raise InitError(f"{path} already exists; not overwritten (delete it, or choose another DIR)")
        if input_dir is None:
            if not interactive:
                raise InitError("no terminal to ask on: give the folder of scans with --input DIR "
                                "(and the results folder with --output DIR)")
            input_dir = _ask("Folder of scans to OCR (input)", None)
            if not input_dir:
                raise InitError("no input folder given")
        if output_dir is None:
            output_dir = _ask("Folder for the results (output)", default_output) if interactive else default_output
        written = write_config(path, input_dir, output_dir)
    except (InitError, EOFError) as exc:
        reason = exc if isinstance(exc, InitError) else "no answer on the terminal"
        print(f"pipeline init: {reason}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    except OSError as exc:
        print(f"pipeline init: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    try:
        config = load_config(written)
    except ConfigError as exc:  # a bug here, or a key whose default cannot stand alone
        written.unlink()  # ours: it did not exist before
        print(f"pipeline init: the config would not load ({exc}); nothing written", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    print(f"pipeline init: wrote {written} (input {config.input}, output {config.output})")
    print(f"next: python -m pipeline run {written}")
    return ExitCode.OK
