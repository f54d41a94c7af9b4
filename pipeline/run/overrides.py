"""``overrides:``: settings for parts of the input tree (a real archive mixes languages).

Why here and not in ``config``: a file's settings are asked for by the stages that act on a
file (its work key, its submit, its ``.json``), which live in ``run/``; ``config`` only reads
and checks them. Every setting an override changes goes into that file's settings fingerprint
(``workkeys.settings_fingerprint`` of the file's own config), so changing an override redoes the
files under its glob and no others.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from pipeline.config import Config
from pipeline.inputs.scan import glob_to_regex, nfc


@lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern:
    return re.compile(glob_to_regex(glob), re.IGNORECASE)   # the scan matches globs without case too


def file_config(config: Config, rel: str) -> Config:
    """The config of input file ``rel``: every override whose glob matches it applied in order
    (a later one wins over an earlier one)."""
    api = config.api
    for override in config.overrides:
        if _pattern(override.glob).fullmatch(nfc(rel)):
            for key, value in override.settings:
                if key == "api.language":
                    api = replace(api, language=value)
    return config if api is config.api else replace(config, api=api)
