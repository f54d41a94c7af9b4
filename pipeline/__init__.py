"""pipeline: batch folder OCR against deAPI's asynchronous img2txt API.

The package is split by concern (see README, "Architecture"): ``scan`` walks the input tree,
``prepare`` makes each image acceptable to the API, ``deapi`` is the HTTP client, ``state``
remembers every file across runs, ``output`` writes results atomically, ``runner`` wires the
stages together, and ``server`` is the offline deAPI-compatible server used as the embedded
default and as the bed of every integration test.
"""

__version__ = "0.1.0"
