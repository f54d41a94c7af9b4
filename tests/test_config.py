"""Config loading: defaults, path resolution, and errors that name the key at fault."""

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config, token_from_env


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    return cfg


def test_minimal_config_gets_defaults_and_resolves_paths_against_the_file(tmp_path, monkeypatch):
    cfg = write(tmp_path, "input: in\noutput: out\n")
    monkeypatch.chdir("/")
    config = load_config(cfg)
    assert config.input == (tmp_path / "in").resolve()
    assert config.output == (tmp_path / "out").resolve()
    assert config.api.base_url == "embedded" and config.api.model == "Nanonets_Ocr_S_F16"
    assert config.state_file == config.output / ".pipeline" / "state.sqlite"
    assert config.concurrency.jobs_in_flight == 8


def test_shipped_config_is_valid():
    config = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    assert config.embedded and config.input.name == "samples"


@pytest.mark.parametrize("text, message", [
    ("input: in\noutput: out\nconcurency: {jobs_in_flight: 4}\n", "unknown key 'concurency' (did you mean 'concurrency'?)"),
    ("input: in\noutput: out\napi: {modle: x}\n", "unknown key 'api.modle' (did you mean 'api.model'?)"),
    ("input: in\noutput: out\nconcurrency: {jobs_in_flight: many}\n", "concurrency.jobs_in_flight: expected a whole number"),
    ("input: in\noutput: out\ninclude: []\n", "include: an empty list takes no file at all"),
    # NaN passes every range check: max_runtime_s: .nan stopped each run at once (exit 3)
    ("input: in\noutput: out\nmax_runtime_s: .nan\n", "max_runtime_s: expected a finite number, got nan"),
    ("input: in\noutput: out\nshutdown_grace_s: .inf\n", "shutdown_grace_s: expected a finite number, got inf"),
    ("input: in\noutput: out\nconcurrency: {jobs_in_flight: 0}\n", "concurrency.jobs_in_flight: must be at least 1"),
    ("input: in\noutput: out\ninclude: ['[abc']\n", "include: invalid glob '[abc': unclosed '['"),
    ("input: in\noutput: out\napi: {base_url: 'http://'}\n", "api.base_url: expected 'embedded' or an http(s) URL"),
    ("input: in\noutput: out\napi: {base_url: 'https://host:99999'}\n", "api.base_url"),
    # urlsplit raises on an unclosed IPv6 bracket: it was exit 70 (a crash), not exit 2
    ("input: in\noutput: out\napi: {base_url: 'http://[::1:8000'}\n", "api.base_url: expected 'embedded' or an http(s) URL"),
    ("input: in\noutput: out\nwebhook: {enabled: true, public_url: 'https://[fe80::1/hook'}\n", "webhook.public_url: not a URL"),
    ("input: in\noutput: out\nprecheck: {jpeg_quality: 500}\n", "precheck.jpeg_quality: must be at most 100"),
    # below the pre-check's own floors: let through, every run and plan ended in exit 70
    ("input: in\noutput: out\nprecheck: {jpeg_quality: 50}\n", "precheck.jpeg_quality: must be at least 70"),
    ("input: in\noutput: out\nprecheck: {max_upload_bytes: 5000}\n", "precheck.max_upload_bytes: must be at least 10000"),
    ("input: in\noutput: out\npolling: {min_interval_s: -1}\n", "polling.min_interval_s: must be greater than 0"),
    ("input: in\noutput: out\npolling: {backoff: 0}\n", "polling.backoff: must be at least 1"),
    ("input: in\noutput: out\nshutdown_grace_s: -5\n", "shutdown_grace_s: must be at least 0"),
    ("input: in\noutput: out\npolling: {min_interval_s: 5, max_interval_s: 1}\n", "polling.min_interval_s: must not exceed"),
    ("input: in\noutput: out\nmax_runtime_s: 0\n", "max_runtime_s: must be greater than 0"),
    ("input: in\noutput: out\nwebhook: {listen_port: 70000}\n", "webhook.listen_port: must be at most 65535"),
    ("input: in\noutput: out\napi: {token_env: 'MY TOKEN'}\n", "api.token_env: expected the name"),
    ("input: in\noutput: out\nstate_path: in\n", "state_path: "),
    ("input: in\noutput: out\napi: {format: pdf}\n", "api.format: must be one of text, json"),
    ("input: in\noutput: out\napi: {return_result_in_response: maybe}\n", "api.return_result_in_response: expected true or false"),
    ("output: out\n", "missing required key 'input'"),
    ("input: nowhere\noutput: out\n", "input: "),
    ("input: in\noutput: in\n", "output: must differ from input"),
    ("input: in\noutput: out\napi: {base_url: ftp://x}\n", "api.base_url"),
    ("input: in\noutput: out\nrate_limits: {plan: custom}\n", "rate_limits.submit_per_minute: required"),
    ("input: in\noutput: out\nwebhook: {enabled: true}\n", "webhook.public_url: required"),
    ("input: in\noutput: out\nwebhook: {enabled: true, public_url: 'http://example.org/hook'}\n", "https://"),
    ("input: [in\n", "not valid YAML"),
    # YAML keeps the last of two keys silently: a second api: block dropped the first one's keys
    ("input: in\noutput: out\napi: {model: x}\nmax_runtime_s: 5\napi: {language: de}\n",
     "the key 'api' is given twice (lines 3 and 5)"),
    ("input: in\noutput: out\napi:\n  language: de\n  language: fr\n", "the key 'language' is given twice (lines 4 and 5)"),
    ("- a\n- b\n", "top level must be a mapping"),
    # an empty language was sent as none (the model's default), with no word
    ("input: in\noutput: out\napi: {language: ''}\n", "api.language: is empty"),
    # a format written as a word, not a list: the message shows the list it needs
    ("input: in\noutput: out\noutputs: alto\n", "e.g. outputs: [txt, json, alto]"),
])
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_apply_dotted_keys(tmp_path):
    config = load_config(write(tmp_path, "input: in\noutput: out\n"),
                         {"max_runtime_s": 5, "api.embedded.engine": "fast"})
    assert config.max_runtime_s == 5.0 and config.api.embedded.engine == "fast"


def test_token_comes_from_the_named_variable_only(tmp_path, monkeypatch):
    config = load_config(write(tmp_path, "input: in\noutput: out\napi: {token_env: MY_TOKEN}\n"))
    monkeypatch.delenv("MY_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="MY_TOKEN is empty or unset"):
        token_from_env(config)
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    assert token_from_env(config) == "s3cret"


def test_a_binary_config_file_is_a_config_error(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ConfigError, match="is not a"):
        load_config(cfg)


def test_output_that_is_an_existing_file_is_refused(tmp_path):
    cfg = write(tmp_path, "input: in\noutput: results.txt\n")
    (tmp_path / "results.txt").write_text("not a folder")
    with pytest.raises(ConfigError, match="output: .* exists and is not a directory"):
        load_config(cfg)


def test_an_input_that_is_an_output_folder_is_refused(tmp_path):
    # input and output swapped in an edit: before, the run wrote its results into the scans and
    # paid for its own searchable PDFs as scans
    (tmp_path / "results" / ".pipeline").mkdir(parents=True)
    (tmp_path / "results" / ".pipeline" / "run-report.json").write_text("{}")
    cfg = write(tmp_path, "input: results\noutput: scans\n")
    with pytest.raises(ConfigError, match="input: .*results is an output folder .* swapped"):
        load_config(cfg)


def test_every_number_in_the_config_has_a_range():
    import dataclasses
    from typing import get_type_hints

    from pipeline import config as C

    def numeric_keys(cls, prefix=""):
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                yield from numeric_keys(hint, prefix + f.name + ".")
            elif hint in (int, float, int | None, float | None):
                yield prefix + f.name

    missing = [k for k in numeric_keys(C.Config) if k not in C._RANGES]
    assert missing == []


def test_the_precheck_ranges_are_ones_the_precheck_takes():
    """Every value the config lets through builds the pre-check's limits (as the run and plan
    do at start-up): jpeg_quality 50 and max_upload_bytes 1000 passed the config and then raised
    ValueError there, an internal error (exit 70) for a setting."""
    from pipeline import config as C
    from pipeline.inputs.prepare import PrecheckLimits

    lo_bytes = C._RANGES["precheck.max_upload_bytes"][0]
    lo_q, hi_q = C._RANGES["precheck.jpeg_quality"]
    for quality in (lo_q, hi_q):
        PrecheckLimits(max_upload_bytes=lo_bytes, jpeg_quality=quality,
                       max_source_pixels=C._RANGES["precheck.max_source_pixels"][0])


@pytest.mark.parametrize("value, ok", [("tok3n\n", True), ("  tok3n  ", True), ("tok en", False),
                                       ("tok\ten", False), ("", False)])
def test_the_token_is_stripped_and_checked(tmp_path, monkeypatch, value, ok):
    config = load_config(write(tmp_path, "input: in\noutput: out\napi: {token_env: MY_TOKEN}\n"))
    monkeypatch.setenv("MY_TOKEN", value)
    if ok:
        assert token_from_env(config) == "tok3n"
    else:
        with pytest.raises(ConfigError, match="MY_TOKEN"):
            token_from_env(config)


def test_progress_off_unquoted_is_off(tmp_path):
    # YAML reads a bare `off` as false; the key means the word.
    assert load_config(write(tmp_path, "input: in\noutput: out\nprogress: off\n")).progress == "off"


def test_every_off_choice_unquoted_is_off(tmp_path):
    """The docs write `rotate_pages: off`, `deskew: off`, `pdfa: off`; YAML 1.1 reads that bare
    `off` as false, which was refused ("expected text, got False") for all but `progress`."""
    cfg = load_config(write(tmp_path, "input: in\noutput: out\nprecheck:\n  rotate_pages: off\n"
                                      "  deskew: off\npdf:\n  pdfa: off\n"))
    assert (cfg.precheck.rotate_pages, cfg.precheck.deskew, cfg.pdf.pdfa) == ("off", "off", "off")
    with pytest.raises(ConfigError, match=r"precheck.deskew: must be one of auto, off, got True"):
        load_config(write(tmp_path, "input: in\noutput: out\nprecheck:\n  deskew: on\n"))
    with pytest.raises(ConfigError, match=r"api.format: must be one of text, json, got False"):
        load_config(write(tmp_path, "input: in\noutput: out\napi:\n  format: off\n"))
