"""pipeline: batch folder OCR against deAPI's asynchronous img2txt API.

The package is split by concern (see docs/architecture.md): ``scan`` walks the input tree,
``prepare`` makes each image acceptable to the API, ``deapi`` is the HTTP client, ``state``
remembers every file across runs, ``output`` writes results atomically, ``runner`` wires the
stages together, and ``server`` is the offline deAPI-compatible server used as the embedded
default and as the bed of every integration test.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:  # one source of truth: pyproject.toml's version, as installed
    __version__ = _version("pipeline")
except PackageNotFoundError:  # a source tree that was never installed (pip install -e .)
    __version__ = "0+unknown"
