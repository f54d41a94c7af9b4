"""Entry point for ``python -m pipeline``."""

import sys

from pipeline.cli import main


def console() -> None:
    """The ``pipeline`` command installed with the package ([project.scripts] in pyproject.toml)."""
    sys.exit(main())

if __name__ == "__main__":
    sys.exit(main())
