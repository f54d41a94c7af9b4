"""A ``multipart/form-data`` body built as one bytes object, for the OCR submit.

Why not ``aiohttp.FormData``: it writes every part header, value and boundary as a separate
socket write, about twenty system calls per upload. At a hundred submits a second that cost
a quarter of the client's CPU in the throughput benchmark (``bench/pipeline_runs.py``). One
body in memory is sent in one write. The image is copied once, which is cheap next to reading
it from disk, and the 10 MB API limit bounds the copy.

Encoding follows the HTML standard's form encoding (what browsers send and Laravel parses):
names and file names in UTF-8, with ``"``, CR and LF percent-escaped in the quoted header
values (and the other control characters, which no header may carry).
"""

from __future__ import annotations

import secrets

from aiohttp import BytesPayload

# The standard escapes only '"', CR and LF; every other control character (a bell or an escape
# in an old file name) is escaped the same way, as no HTTP header may carry one: the server
# refused the whole body (422), and the file failed for its name.
_ESCAPES = str.maketrans({'"': "%22", **{chr(c): f"%{c:02X}" for c in [*range(0x20), 0x7F]}})


def _quoted(value: str) -> str:
    return '"' + value.translate(_ESCAPES) + '"'


class MultipartForm:
    """Fields and files in the order added; ``payload()`` gives a fresh body for one request."""

    def __init__(self) -> None:
        self._parts: list[tuple[str, bytes, str | None, str | None]] = []

    def add_field(self, name: str, value: str | bytes, *, filename: str | None = None,
                  content_type: str | None = None) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._parts.append((name, data, filename, content_type))

    def encode(self, boundary: str | None = None) -> tuple[bytes, str]:
        """(body, Content-Type header value)."""
        boundary = boundary or "pipeline-" + secrets.token_hex(16)
        chunks: list[bytes] = []
        for name, data, filename, content_type in self._parts:
            header = f"--{boundary}\r\nContent-Disposition: form-data; name={_quoted(name)}"
            if filename is not None:
                header += f"; filename={_quoted(filename)}"
            header += "\r\n"
            if content_type is not None:
                header += f"Content-Type: {content_type}\r\n"
            chunks += [header.encode("utf-8"), b"\r\n", data, b"\r\n"]
        chunks.append(f"--{boundary}--\r\n".encode("ascii"))
        return b"".join(chunks), f"multipart/form-data; boundary={boundary}"

    def payload(self) -> BytesPayload:
        body, content_type = self.encode()
        return BytesPayload(body, content_type=content_type)
