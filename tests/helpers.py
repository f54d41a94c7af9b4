"""Test helpers: images made on the fly, and a one-call way to run the real pipeline."""

from __future__ import annotations

import io
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def font(size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size=size)


def text_page(text: str, size: tuple[int, int] = (600, 200), mode: str = "L") -> Image.Image:
    img = Image.new(mode, size, "white")
    ImageDraw.Draw(img).multiline_text((20, 20), text, fill="black", font=font(32))
    return img


def save(img: Image.Image, path: Path, fmt: str | None = None, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def distinct_png(path: Path, seed: int, size: tuple[int, int] = (300, 200)) -> Path:
    """A small PNG whose pixels differ from every other seed's (the fast engine tells them apart)."""
    rnd = random.Random(seed)
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rnd.randrange(size[0] - 20), rnd.randrange(size[1] - 20)
        draw.rectangle((x, y, x + rnd.randrange(5, 20), y + rnd.randrange(5, 20)), fill=rnd.randrange(0, 200))
    return save(img, path, "PNG")


def noise_image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rnd = random.Random(seed)
    return Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))


def write_config(tmp_path: Path, base_url: str, **overrides: Any) -> Path:
    """A config for ``tmp_path/in`` -> ``tmp_path/out`` against ``base_url`` (token in env)."""
    data: dict[str, Any] = {
        "input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "progress": "off",
        "api": {"base_url": base_url, "token_env": "PIPELINE_TEST_TOKEN", "format": "text",
                "return_result_in_response": True},
        "concurrency": {"jobs_in_flight": 4},
        "retries": {"max_attempts": 4, "backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        "polling": {"first_poll_s": 0.02, "min_interval_s": 0.02, "max_interval_s": 0.1},
        "timeouts": {"job_s": 10},
        "shutdown_grace_s": 5,
    }
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    (tmp_path / "in").mkdir(exist_ok=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


async def run_pipeline(cfg: Path, token: str | None, **runner_kw: Any):
    """Run the real Runner in this event loop; returns (exit code, run report)."""
    from pipeline.config import load_config
    from pipeline.run.runner import Runner

    if token is not None:
        os.environ["PIPELINE_TEST_TOKEN"] = token
    config = load_config(cfg)
    runner = Runner(config, stream=io.StringIO(), **runner_kw)
    code = await runner.run()
    return code, runner.report, runner.stream.getvalue()


def read_result(tmp_path: Path, rel: str) -> tuple[str, dict]:
    out = tmp_path / "out"
    return (out / (rel + ".txt")).read_text(), json.loads((out / (rel + ".json")).read_text())


def failures(tmp_path: Path) -> dict[str, dict]:
    rows = json.loads((tmp_path / "out" / ".pipeline" / "failures.json").read_text())
    return {r["path"]: r for r in rows}


def run_as_nobody(fn) -> list[str]:
    """Run ``fn()`` (returning lines) in a forked child with effective uid/gid 65534; return its
    lines. Root ignores permission bits, so this is how a root test run sees an unreadable path.
    A child that cannot drop privileges answers ``["child-error ..."]``."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(rd)
            os.setegid(65534)
            os.seteuid(65534)
            os.write(wr, "\n".join(fn()).encode() + b"\n")
        except BaseException as e:                          # noqa: BLE001 - report, then exit
            os.write(wr, f"child-error {e!r}\n".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(wr)
    with os.fdopen(rd) as fh:
        out = fh.read().splitlines()
    os.waitpid(pid, 0)
    return out


def mark_then_sleep(marker: str, seconds: float) -> str:
    """A stand-in for a page that takes a while, run in a pool's worker process: says when it has
    begun (the marker file), then sleeps."""
    Path(marker).touch()
    time.sleep(seconds)
    return "slept"
