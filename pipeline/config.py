"""Load ``config.yaml`` into frozen objects, failing before any work with the key at fault.

Why so strict: the tool runs unattended from cron. A typo such as ``concurency: 64`` silently
ignored would run a whole night at the default; so unknown keys are errors (with a "did you
mean"), every value is type-checked, and every message names the full dotted key.

Relative paths in the file are resolved against the file's own directory, so a config works
the same from cron (whose working directory is ``$HOME``) and from ``make run``.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml
from urllib.parse import urlsplit

from pipeline.inputs.scan import glob_to_regex
from pipeline.formats import DEFAULT_OUTPUTS, FORMATS, REQUIRED


IMAGE_GLOBS = ("**/*.jpg", "**/*.jpeg", "**/*.png", "**/*.tif", "**/*.tiff", "**/*.gif", "**/*.bmp",
               "**/*.webp", "**/*.jp2", "**/*.jpf", "**/*.jpx", "**/*.j2k", "**/*.pbm", "**/*.pgm", "**/*.ppm",
               "**/*.pdf")


class ConfigError(Exception):
    """A bad config file or option; the message names the key and the problem."""


#: the output folder's folder of run files (state store, run report, failures list), and the two
#: files in it that mark a folder as a tree of results (``run.tree``, the input check below)
CONTROL_DIR = ".pipeline"
STATE_FILE = "state.sqlite"
RUN_REPORT = "run-report.json"


@dataclass(frozen=True)
class EmbeddedConfig:
    """The in-process deAPI-compatible server used when ``api.base_url`` is ``embedded``."""

    engine: str = "rapidocr"          # rapidocr | tesseract | fast
    workers: int = 2                  # OCR worker processes (two on one thread each beat one on two: docs/engines.md)
    max_input_height: int | None = None   # refuse taller uploads with INPUT_TOO_LARGE, as the hosted model (docs/client.md)
    max_answer_chars: int | None = None   # refuse longer answers with CONTEXT_LENGTH_EXCEEDED


@dataclass(frozen=True)
class ApiConfig:
    base_url: str = "embedded"        # "embedded" or e.g. https://api.deapi.ai
    token_env: str = "DEAPI_API_KEY"  # name of the environment variable holding the token
    model: str = "Nanonets_Ocr_S_F16"
    language: str | None = "en"
    format: str = "text"              # text | json
    return_result_in_response: bool = True
    # The model's tallest image (px): taller pages are cut into strips at line gaps (docs/client.md).
    # None: no limit known; an INPUT_TOO_LARGE refusal teaches one (kept in the state store).
    max_input_height: int | None = None
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)


@dataclass(frozen=True)
class ConcurrencyConfig:
    jobs_in_flight: int = 8           # upper bound of OCR jobs submitted and not yet finished
    min_jobs_in_flight: int = 1       # adaptive concurrency never goes below this
    adaptive: bool = True             # AIMD: grow while the API keeps up, shrink on 429/latency
    prepare_workers: int = 2          # threads doing Pillow work at once


@dataclass(frozen=True)
class TimeoutConfig:
    connect_s: float = 10.0
    read_s: float = 120.0             # per HTTP read (an upload of 10 MB on a slow line)
    job_s: float = 900.0              # per-job deadline from submit to a terminal status


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 5             # HTTP attempts per call for transient errors
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0  # longer Retry-After (daily limit) stops the run instead
    max_transient_runs: int = 3       # runs a file may fail transiently before quarantine
    outage_failures: int = 10         # API calls failed in a row (after their retries): the API is gone, exit 6; 0: off
    outage_min_s: float = 60.0        # ... and over at least this long (a blip is not an outage)


@dataclass(frozen=True)
class PollingConfig:
    first_poll_s: float = 1.0         # prior for the first poll, before job times are learnt
    min_interval_s: float = 0.2
    max_interval_s: float = 30.0
    backoff: float = 1.5              # growth of the fallback interval once the learnt schedule is spent
    status_calls_per_job: int | None = None  # poll budget a job; default from the plan (basic: 4)
    max_lateness_share: float | None = 0.25  # no poll gap over this share of a job's time ...; null: no bound
    lateness_floor_s: float = 1.0     # ... or over this many seconds, whichever is longer (a naive poller's 1 s)
    not_found_grace_s: float = 30.0   # a 404 on a job this run just submitted is asked again this long


@dataclass(frozen=True)
class RateLimitConfig:
    plan: str = "unlimited"           # unlimited | basic | premium | custom
    submit_per_minute: int | None = None
    submit_per_day: int | None = None
    status_per_minute: int | None = None
    status_per_day: int | None = None


@dataclass(frozen=True)
class PrecheckConfig:
    max_upload_bytes: int = 10_000_000
    max_source_pixels: int = 250_000_000   # decompression-bomb guard
    jpeg_quality: int = 90
    rotate_pages: str = "auto"             # auto | off: turn pages found upside down or sideways
    deskew: str = "auto"                   # auto | off: level pages skewed by 1 degree or more


@dataclass(frozen=True)
class PdfConfig:
    """How PDF pages become uploads (see docs/pdf.md)."""

    dpi: int = 300                    # render resolution (lowered per page only to fit max_width)
    text_layer: str = "auto"          # auto | ocr | use
    max_pages: int = 1000             # a PDF with more pages is rejected as a whole (too_many_pages)
    min_text_chars: int = 20          # auto: fewer non-space characters on a page means "no real text"
    trust_invisible_text: bool = False  # auto: take an invisible (OCR-made) text layer as real text
    pdfa: str = "2b"                  # the searchable PDF output: PDF/A-2b | 3b | off (docs/formats.md)
    pdfa_fallback: str = "plain"      # a PDF that cannot be PDF/A: plain (noted in the run report) | fail


@dataclass(frozen=True)
class GeometryConfig:
    """Word positions for text-only answers (docs/formats.md, "Words for text-only answers")."""

    workers: int = 1                  # processes finding lines and words on pages (off the event loop)
    method: str = "read"              # read (recognition anchors, text match) | mix | ink | tesseract (widths only)


@dataclass(frozen=True)
class WebhookConfig:
    enabled: bool = False
    listen_host: str = "127.0.0.1"
    listen_port: int = 8787
    public_url: str | None = None     # the HTTPS URL deAPI calls (your reverse proxy)
    secret_env: str = "DEAPI_WEBHOOK_SECRET"
    wait_s: float = 120.0             # after this long without a webhook, poll instead


@dataclass(frozen=True)
class BudgetConfig:
    """Spending caps (docs/cost.md): a run stops submitting before one would be exceeded (exit 3)."""

    max_pages_per_run: int | None = None     # pages submitted by one run
    max_cost_per_run: float | None = None    # in the API's currency (USD), by the price quotes
    max_cost_per_day: float | None = None    # summed over every run of the calendar day
    time_zone: str = "UTC"                   # the calendar day of max_cost_per_day (IANA name)
    quote_max_age_days: float = 7.0          # a cached price quote older than this is asked again
    refuse_short_balance: bool = False       # exit 5 before the first submit when the balance will not last


#: settings an ``overrides:`` entry may change for its part of the tree (pipeline/run/overrides.py)
OVERRIDABLE = ("api.language",)


@dataclass(frozen=True)
class Override:
    """``overrides: [{glob: "fraktur/**", api: {language: de+frk}}]``: settings for the files under a glob."""

    glob: str
    settings: tuple[tuple[str, Any], ...]   # (dotted key, value)


@dataclass(frozen=True)
class Config:
    input: Path
    output: Path
    include: tuple[str, ...] = IMAGE_GLOBS  # matched case-insensitively
    exclude: tuple[str, ...] = ()
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS  # txt json md alto hocr pdf page mets (docs/formats.md)
    mets_per_folder: bool = False     # with mets: also one folder.mets.xml a folder (its files as one object)
    state_path: Path | None = None    # default: <output>/.pipeline/state.sqlite
    min_free_mb: int = 64             # free space kept on the outputs' and the state's disks (run.diskfloor); 0: off
    min_file_age_s: float = 0.0       # younger files are "still being written": next run
    max_runtime_s: float | None = None
    shutdown_grace_s: float = 30.0    # a stop ends within this long (runner.in_flight_grace)
    progress: str = "auto"            # auto | bar | log | off
    log_interval_s: float = 60.0
    api: ApiConfig = field(default_factory=ApiConfig)
    concurrency: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    retries: RetryConfig = field(default_factory=RetryConfig)
    polling: PollingConfig = field(default_factory=PollingConfig)
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    precheck: PrecheckConfig = field(default_factory=PrecheckConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    pdf: PdfConfig = field(default_factory=PdfConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    overrides: tuple[Override, ...] = ()  # settings for parts of the tree, e.g. [{glob: "fraktur/**", api: {language: de+frk}}]
    geometry: GeometryConfig = field(default_factory=GeometryConfig)

    @property
    def state_file(self) -> Path:
        return self.state_path or self.output / CONTROL_DIR / STATE_FILE

    @property
    def control_dir(self) -> Path:
        """Run report, failures list and default state live here, out of the mirrored tree."""
        return self.output / CONTROL_DIR

    @property
    def embedded(self) -> bool:
        return self.api.base_url == "embedded"


_CHOICES = {
    "api.format": ("text", "json"),
    "api.embedded.engine": ("rapidocr", "tesseract", "fast"),
    "rate_limits.plan": ("unlimited", "basic", "premium", "custom"),
    "progress": ("auto", "bar", "log", "off"),
    "pdf.text_layer": ("auto", "ocr", "use"),
    "pdf.pdfa": ("2b", "3b", "off"),
    "pdf.pdfa_fallback": ("plain", "fail"),
    "precheck.rotate_pages": ("auto", "off"),
    "precheck.deskew": ("auto", "off"),
    "geometry.method": ("read", "mix", "ink", "tesseract"),
}
# Every number's allowed range, inclusive: (lowest, highest); ``None`` = no bound. A key of a
# number missing here is a bug (``test_config`` checks that every numeric field has a range),
# because an unchecked number is how "polling.backoff: 0" silently polls in a busy loop.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "min_file_age_s": (0, None),
    "min_free_mb": (0, None),
    "max_runtime_s": (0.001, None),
    "shutdown_grace_s": (0, 3600),
    "log_interval_s": (0.1, None),
    "api.embedded.workers": (1, 64),
    "api.embedded.max_input_height": (128, None),
    "api.embedded.max_answer_chars": (1, None),
    "api.max_input_height": (128, None),
    "concurrency.jobs_in_flight": (1, 10_000),
    "concurrency.min_jobs_in_flight": (1, 10_000),
    "concurrency.prepare_workers": (1, 256),
    "timeouts.connect_s": (0.001, 3600),
    "timeouts.read_s": (0.001, 24 * 3600),
    "timeouts.job_s": (0.001, 7 * 24 * 3600),
    "retries.max_attempts": (1, 100),
    "retries.backoff_initial_s": (0, 3600),
    "retries.backoff_max_s": (0, 24 * 3600),
    "retries.max_retry_after_s": (0, 7 * 24 * 3600),
    "retries.max_transient_runs": (1, 1000),
    "retries.outage_failures": (0, 100000),
    "retries.outage_min_s": (0, 24 * 3600),
    "polling.first_poll_s": (0.001, 3600),
    "polling.min_interval_s": (0.001, 3600),
    "polling.max_interval_s": (0.001, 24 * 3600),
    "polling.backoff": (1.0, 10.0),
    "polling.status_calls_per_job": (1, 1000),
    "polling.max_lateness_share": (0.01, 100),
    "polling.lateness_floor_s": (0, 3600),
    "polling.not_found_grace_s": (0, 3600),
    "rate_limits.submit_per_minute": (1, None),
    "rate_limits.submit_per_day": (1, None),
    "rate_limits.status_per_minute": (1, None),
    "rate_limits.status_per_day": (1, None),
    # The pre-check's own floors (inputs.prepare.PrecheckLimits): below them it refused to start,
    # and a config let through here ended every run and plan as an internal error (exit 70).
    "precheck.max_upload_bytes": (10_000, None),
    "precheck.max_source_pixels": (1, None),
    "precheck.jpeg_quality": (70, 100),         # below 70 the ladder shrinks a page instead
    "webhook.listen_port": (0, 65535),
    "pdf.dpi": (36, 1200),
    "pdf.max_pages": (1, 1_000_000),
    "pdf.min_text_chars": (1, 100_000),
    "webhook.wait_s": (0.001, 7 * 24 * 3600),
    "budget.max_pages_per_run": (0, None),
    "budget.max_cost_per_run": (0, None),
    "budget.max_cost_per_day": (0, None),
    "budget.quote_max_age_days": (0, 3650),
    "geometry.workers": (1, 64),
}


def _check_range(key: str, value: Any) -> None:
    bounds = _RANGES.get(key)
    if bounds is None or value is None:
        return
    low, high = bounds
    if low is not None and value < low:
        what = "greater than 0" if low in (0.001, 0.1) else f"at least {low:g}"
        raise ConfigError(f"{key}: must be {what}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: must be at most {high:g}, got {value!r}")


def _convert(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type ``hint`` and convert it; ``key`` is for messages."""
    origin, args = get_origin(hint), get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key}: a value is required (got nothing)")
    if args and type(None) in args:  # Optional[X]
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(key, value, inner)
    if is_dataclass(hint):
        return _build(hint, value, key + ".")
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if hint is Path:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(os.path.expanduser(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):   # .nan passes every range check (max_runtime_s: .nan stopped at once)
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if value is False and "off" in _CHOICES.get(key, ()):
            # YAML 1.1 reads a bare `off` as false: every key whose choices include the word
            # means the word (progress, pdf.pdfa, precheck.rotate_pages, precheck.deskew)
            return "off"
        if isinstance(value, bool) and key in _CHOICES:
            bare = "on, yes or true as true" if value else "no or false as false"
            raise ConfigError(f"{key}: must be one of {', '.join(_CHOICES[key])}, got {value!r} "
                              f"(YAML reads a bare {bare}; quote the word)")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - a bug in this table


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    where = prefix.rstrip(".") or "the config file"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown key '{prefix}{key}'{hint}")
    values = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name in data:
            value = _convert(key, data[f.name], hints[f.name])
        elif f.default is not MISSING or f.default_factory is not MISSING:
            continue
        else:
            raise ConfigError(f"missing required key '{key}'")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key}: must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        _check_range(key, value)
        values[f.name] = value
    return cls(**values)


class _DuplicateKey(ValueError):
    """A mapping of the config file names one key twice."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping. YAML keeps the last
    one silently: a second ``api:`` block (the README's lines pasted under ``init``'s file)
    replaced the first one whole, its keys back at their defaults, with no word."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise _DuplicateKey(f"the key {key!r} is given twice (lines {seen[key]} and {line}); "
                                        "YAML would keep only the last one: merge them into one")
                seen.setdefault(key, line)
        return super().construct_mapping(node, deep)


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a config file. ``overrides`` maps dotted keys to values (CLI flags)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a text (UTF-8) YAML file: byte {exc.start} cannot be read "
                          f"({exc.reason}); is it the right file?") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if "\x00" in text:
        raise ConfigError(f"{path} is not a YAML file (it contains NUL bytes); is it the right file?")
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{part}: expected a mapping of keys, got {node!r}")
        node[last] = value
    overrides_ = _parse_overrides(data.pop("overrides", None))
    config = replace(_build(Config, data), overrides=overrides_)
    return _validate(config, path.resolve().parent)


def _parse_overrides(raw: Any) -> tuple[Override, ...]:
    """``overrides:`` as a list of ``{glob: ..., <setting>: ...}``; settings nested (``api:
    {language: x}``) or dotted (``api.language: x``); only ``OVERRIDABLE`` keys."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"overrides: expected a list of {{glob: ..., api: {{language: ...}}}}, got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        where = f"overrides[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("glob"), str):
            raise ConfigError(f"{where}: expected a mapping with a glob, e.g. {{glob: 'fraktur/**', "
                              f"api: {{language: de+frk}}}}, got {item!r}")
        try:
            glob_to_regex(item["glob"])
        except ValueError as exc:
            raise ConfigError(f"{where}.glob: {exc}") from None
        settings: dict[str, Any] = {}

        def flatten(node: dict, prefix: str) -> None:
            for key, value in node.items():
                dotted = f"{prefix}{key}"
                if isinstance(value, dict):
                    flatten(value, dotted + ".")
                else:
                    settings[dotted] = value

        flatten({k: v for k, v in item.items() if k != "glob"}, "")
        if not settings:
            raise ConfigError(f"{where}: sets nothing; add a setting such as api: {{language: de}}")
        for key, value in settings.items():
            if key not in OVERRIDABLE:
                raise ConfigError(f"{where}.{key}: cannot be set for part of the tree (only {', '.join(OVERRIDABLE)})")
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}.{key}: expected text such as de+frk, got {value!r}")
        out.append(Override(item["glob"], tuple(sorted(settings.items()))))
    return tuple(out)


def _validate(config: Config, base: Path) -> Config:
    """Cross-key checks and path resolution."""
    inp = _resolve(config.input, base).resolve()
    out = _resolve(config.output, base).resolve()
    state = _resolve(config.state_path, base).resolve() if config.state_path else None
    if not inp.is_dir():
        raise ConfigError(f"input: {inp} is not a directory")
    if (inp / CONTROL_DIR / RUN_REPORT).is_file():
        # input and output swapped in an edit: the run wrote its .txt and .json into the scans and
        # read the outputs (the searchable PDFs: paid for) as scans
        raise ConfigError(f"input: {inp} is an output folder (it holds .pipeline/run-report.json), not a tree "
                          "of scans: are input and output swapped?")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output: {out} exists and is not a directory")
    if state is not None and state.is_dir():
        raise ConfigError(f"state_path: {state} is a directory; name the database file itself "
                          f"(e.g. {state / 'state.sqlite'})")
    if state is not None and state.parent.exists() and not state.parent.is_dir():
        raise ConfigError(f"state_path: {state.parent} is not a directory")
    if not config.include:   # a run that can never take a file would exit 0 night after night
        raise ConfigError("include: an empty list takes no file at all; leave the key out for the image "
                          "extensions, or write [\"**/*\"] for every file")
    for key in ("include", "exclude"):
        for pattern in getattr(config, key):
            try:
                glob_to_regex(pattern)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
    if out == inp:
        raise ConfigError("output: must differ from input (results would be mixed with the scans)")
    if inp.is_relative_to(out):
        raise ConfigError("output: must not contain the input directory")
    c = config.concurrency
    if c.min_jobs_in_flight > c.jobs_in_flight:
        raise ConfigError("concurrency.min_jobs_in_flight: must not exceed concurrency.jobs_in_flight")
    if config.api.base_url != "embedded":
        try:   # urlsplit itself refuses some URLs (an unclosed IPv6 bracket), .port others
            split = urlsplit(config.api.base_url)
            url_ok = split.scheme in ("http", "https") and bool(split.hostname)
            url_ok = url_ok and (split.port is None or 0 < split.port < 65536)
        except ValueError:
            url_ok = False
        if not url_ok:
            raise ConfigError(f"api.base_url: expected 'embedded' or an http(s) URL such as "
                              f"https://api.deapi.ai, got {config.api.base_url!r}")
    if config.api.language is not None and not config.api.language.strip():
        # an empty language is sent as none at all: the model's default, not what was meant
        raise ConfigError("api.language: is empty; leave the key out for en, write a code such as "
                          "de or de+frk, or null to send no language")
    if not config.api.token_env.strip() or any(c.isspace() or c == "=" for c in config.api.token_env):
        raise ConfigError(f"api.token_env: expected the name of an environment variable, got "
                          f"{config.api.token_env!r}")
    p = config.polling
    if p.min_interval_s > p.max_interval_s:
        raise ConfigError("polling.min_interval_s: must not exceed polling.max_interval_s")
    r = config.retries
    if r.backoff_initial_s > r.backoff_max_s:
        raise ConfigError("retries.backoff_initial_s: must not exceed retries.backoff_max_s")
    if config.rate_limits.plan == "custom" and config.rate_limits.submit_per_minute is None:
        raise ConfigError("rate_limits.submit_per_minute: required when rate_limits.plan is custom")
    if config.webhook.enabled:
        url = config.webhook.public_url
        if not url:
            raise ConfigError("webhook.public_url: required when webhook.enabled is true")
        try:
            host = urlsplit(url).hostname or ""
        except ValueError as exc:
            raise ConfigError(f"webhook.public_url: not a URL ({exc}), got {url!r}") from None
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        if not url.startswith("https://") and not (url.startswith("http://") and loopback):
            raise ConfigError("webhook.public_url: deAPI only calls https:// URLs "
                              "(plain http is accepted only to a loopback host, for a local server)")
    _validate_outputs(config)
    _validate_time_zone(config.budget.time_zone)
    return replace(config, input=inp, output=out, state_path=state)


def _validate_outputs(config: Config) -> None:
    """``outputs``: known names; txt and json always (json is the record every other output is
    regenerated from); alto/hocr/pdf need word positions, which only ``api.format: json`` brings."""
    for name in config.outputs:
        if name not in FORMATS:
            close = difflib.get_close_matches(name, FORMATS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"outputs: unknown format {name!r}{hint}; choose from {', '.join(FORMATS)}")
    missing = [n for n in REQUIRED if n not in config.outputs]
    if missing:
        wanted = [*missing, *(n for n in config.outputs if n not in missing)]
        raise ConfigError(f"outputs: must include {' and '.join(missing)} (the .json is the stored result "
                          "the other outputs are regenerated from; verify checks the .txt against it), "
                          f"e.g. outputs: [{', '.join(wanted)}]")
    if config.mets_per_folder and "mets" not in config.outputs:
        raise ConfigError("mets_per_folder: needs mets in outputs (the folder METS points at the files' outputs)")
    # alto/hocr/pdf with api.format: text: the answer's words are placed on the page's own
    # geometry (pipeline/ocr/align.py), so NEEDS_BOXES no longer refuses a text-only answer.


def _validate_time_zone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"budget.time_zone: unknown time zone {name!r} (an IANA name such as UTC or "
                          "Europe/Berlin)") from None


def token_from_env(config: Config) -> str:
    """The API token from the environment (never from the file, never logged).

    Surrounding whitespace is stripped (a token file read with ``$(cat token)`` or an
    ``EnvironmentFile=`` often ends in a newline); whitespace *inside* is an error, because no
    deAPI token has any and the API would answer 401 to every file."""
    token = os.environ.get(config.api.token_env, "").strip()
    if not token:
        raise ConfigError(
            f"api.token_env: the environment variable {config.api.token_env} is empty or unset; "
            f"export your deAPI token there (or use api.base_url: embedded)")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(
            f"api.token_env: the token in {config.api.token_env} contains whitespace or control "
            f"characters inside it; copy it again as one word")
    return token
