"""pipeline: batch folder OCR against deAPI's asynchronous img2txt API.

The packages are the pipeline's stages (see docs/architecture.md): ``inputs`` finds files and
makes their pages ready, ``deapi`` is the HTTP client, ``run`` is one run and one file's way
through it (with the state store), ``formats`` writes the outputs, ``ocr`` holds the engines the
server and the client share, and ``server`` is the offline deAPI-compatible server used as the
embedded default and as the bed of every integration test. The top level keeps the entry points
(``cli``, ``__main__``, ``init_config``) and what every stage shares (``config``, ``exitcodes``,
``crashlog``).
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:  # one source of truth: pyproject.toml's version, as installed
    __version__ = _version("pipeline")
except PackageNotFoundError:  # a source tree that was never installed (pip install -e .)
    __version__ = "0+unknown"
