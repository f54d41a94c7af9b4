"""Shared fixtures: the project's own server on loopback, and configs pointing the real runner at it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# beside the checkout, or where $PIPELINE_SHARED_DATA says (as bench/ocr_engines.py reads it)
SHARED_DATA = Path(os.environ.get("PIPELINE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TOKEN = "test-token-not-secret"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present: the third-party scans live beside the checkout, not in it")
    return SHARED_DATA


@pytest.fixture
async def server():
    """A fast-engine deAPI-compatible server on an ephemeral loopback port."""
    from pipeline.server import EmbeddedServer, ServerConfig

    async with EmbeddedServer(ServerConfig(engine="fast", tokens=(TOKEN,), profile="unlimited",
                                           allow_http_webhooks=True)) as srv:
        yield srv
