"""Reading and validating request bodies, with Laravel's messages and its 422 shape.

Why its own module: every rule that decides "422 or job" lives here, as plain functions over
plain values, so the handlers stay short and a malformed body can only ever end in a clear 422
(never a crash). Bodies are read with hard caps: a file part over the upload limit is cut off
and reported, a text field over 64 KB is rejected, whatever the client claims.
"""

from __future__ import annotations

import io
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import BodyPartReader, web
from PIL import Image

from .models import TYPE_TITLES, find_model, pixel_limits

MAX_UPLOAD = 10 * 1024 * 1024          # deAPI: images up to 10 MB
MAX_FIELD = 64 * 1024                  # any non-file form field
MAX_WEBHOOK_URL = 2048
IMAGE_TYPES = "jpg, jpeg, png, gif, bmp, webp"
# Pillow format name -> accepted (MPO is a multi-picture JPEG straight from cameras).
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"}
TRUE, FALSE = {"true", "1"}, {"false", "0"}

Errors = dict[str, list[str]]


class BodyError(Exception):
    """The body cannot be read as the endpoint's form (answered with a 422)."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(next(iter(errors.values()))[0])
        self.errors = errors


@dataclass
class Form:
    """A request body reduced to text fields and file fields, whatever its encoding."""

    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    oversize: set[str] = field(default_factory=set)


async def read_form(request: web.Request, max_file: int = MAX_UPLOAD) -> Form:
    """Multipart (streamed, capped), urlencoded or JSON into a ``Form``; ``BodyError`` when unreadable."""
    ctype = request.content_type
    form = Form()
    if ctype.startswith("multipart/"):
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or not part.name:
                    continue  # nested multipart or nameless parts carry nothing we use
                if part.filename is not None:
                    data, cut = await _read_capped(part, max_file)
                    if cut:
                        form.oversize.add(part.name)
                    form.files[part.name] = data
                else:
                    data, cut = await _read_capped(part, MAX_FIELD)
                    if cut:
                        raise BodyError({part.name: [f"The {_label(part.name)} field is too long."]})
                    form.fields[part.name] = data.decode(part.get_charset("utf-8"), errors="replace")
        except BodyError:
            raise
        except Exception as exc:  # aiohttp raises several types for broken multipart bodies
            raise BodyError({"body": [f"The request body is not valid multipart/form-data ({exc})."]}) from None
    elif ctype == "application/json":
        raw = await _read_body(request)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise BodyError({"body": ["The request body is not valid JSON."]}) from None
        if not isinstance(body, dict):
            raise BodyError({"body": ["The JSON body must be an object of fields."]})
        form.fields = body
    elif ctype == "application/x-www-form-urlencoded":
        raw = await _read_body(request)
        form.fields = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    else:
        await _read_body(request)
    return form


async def _read_capped(part: BodyPartReader, cap: int) -> tuple[bytes, bool]:
    buf = bytearray()
    while chunk := await part.read_chunk(1 << 16):
        buf += chunk
        if len(buf) > cap:
            return bytes(buf[:cap]), True
    return bytes(buf), False


async def _read_body(request: web.Request) -> bytes:
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > MAX_FIELD * 4:
            raise BodyError({"body": ["The request body is too large for this endpoint."]})
    return bytes(buf)


def _label(name: str) -> str:
    return name.replace("_", " ")


def parse_bool(value: Any) -> bool | None:
    """Laravel's boolean rule: true/false/1/0 (strings or JSON); ``None`` when it is none of them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in TRUE:
            return True
        if v in FALSE:
            return False
    return None


def sniff_image(data: bytes) -> tuple[str | None, int, int, str | None]:
    """(Pillow format, width, height, problem) read from the bytes themselves, never the filename."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format, im.size[0], im.size[1], None
    except Image.DecompressionBombError as exc:
        return None, 0, 0, f"The image is too large to decode ({exc})."
    except Exception:
        return None, 0, 0, None


@dataclass
class SubmitRequest:
    """A valid ``img2txt`` submission."""

    image: bytes
    width: int
    height: int
    model: str
    language: str | None
    format: str
    inline: bool
    webhook_url: str | None


def _text(fields: dict[str, Any], name: str, errors: Errors) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors[name] = [f"The {_label(name)} field must be a string."]
        return None
    return value


def _check_model(slug: str | None, errors: Errors) -> dict[str, Any] | None:
    if not slug:
        errors.setdefault("model", ["The model field is required."])
        return None
    model = find_model(slug)
    if model is None:
        errors["model"] = ["The selected model does not exist."]
    elif "img2txt" not in model["inference_types"]:
        errors["model"] = [f"The selected model does not support {TYPE_TITLES['img2txt']}."]
        return None
    return model


def _check_image(form: Form, errors: Errors) -> tuple[bytes | None, int, int]:
    if "image" in form.oversize:
        errors["image"] = [f"The image must not be greater than {MAX_UPLOAD // 1024} kilobytes."]
        return None, 0, 0
    data = form.files.get("image")
    if data is None:
        errors["image"] = ["The image field must be a file." if "image" in form.fields
                           else "The image field is required."]
        return None, 0, 0
    if not data:
        errors["image"] = ["The image field must be a file."]
        return None, 0, 0
    fmt, w, h, problem = sniff_image(data)
    if problem:
        errors["image"] = [problem]
        return None, 0, 0
    if fmt not in ACCEPTED_FORMATS:
        errors["image"] = [f"The image field must be a file of type: {IMAGE_TYPES}."]
        return None, 0, 0
    return data, w, h


def check_dimensions(model: dict[str, Any] | None, w: int, h: int, field_name: str, errors: Errors) -> None:
    lim = pixel_limits(model) if model else None
    if lim and not (lim["min_width"] <= w <= lim["max_width"] and lim["min_height"] <= h <= lim["max_height"]):
        errors.setdefault(field_name, []).append(
            f"The image dimensions must be between {lim['min_width']}x{lim['min_height']} and "
            f"{lim['max_width']}x{lim['max_height']} pixels for this model (got {w}x{h}).")


def webhook_url_problem(url: str, allow_http: bool) -> str | None:
    """deAPI takes HTTPS only; plain http is allowed (opt-in) to loopback hosts for local receivers."""
    if len(url) > MAX_WEBHOOK_URL:
        return f"The webhook url must not be greater than {MAX_WEBHOOK_URL} characters."
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "The webhook url must be a valid URL."
    if not host or any(c.isspace() for c in url):
        return "The webhook url must be a valid URL."
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and allow_http and _is_loopback(host):
        return None
    if parts.scheme == "http" and allow_http:
        return "The webhook url must use HTTPS; plain HTTP is accepted only to a loopback host on this server."
    return "The webhook url must be a valid HTTPS URL. HTTP URLs will be rejected."


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def language_problem(engine: str | None, language: str) -> list[str] | None:
    """Laravel's ``in`` rule message for a language the engine cannot read here, plus why."""
    from pipeline.ocr.languages import LanguageError, check_language

    if not engine:
        return None
    try:
        check_language(engine, language)
    except LanguageError as exc:
        return ["The selected language is invalid.", str(exc)]
    return None


def validate_submit(form: Form, allow_http_webhooks: bool, engine: str | None = None
                    ) -> tuple[SubmitRequest | None, Errors]:
    """All of img2txt's rules, in Laravel's order (the first error becomes ``message``).

    With ``engine`` given, a language that engine cannot read as installed is a 422 too.
    """
    errors: Errors = {}
    image, w, h = _check_image(form, errors)
    model_slug = _text(form.fields, "model", errors)
    model = _check_model(model_slug, errors)
    if image is not None and model is not None:
        check_dimensions(model, w, h, "image", errors)
    language = _text(form.fields, "language", errors)
    if language is not None and len(language) > 32:
        errors["language"] = ["The language must not be greater than 32 characters."]
    elif language:
        problem = language_problem(engine, language)
        if problem:
            errors["language"] = problem
    fmt = _text(form.fields, "format", errors) or "text"
    if fmt not in ("text", "json"):
        errors["format"] = ["The selected format is invalid. Use text or json."]
    inline_raw = form.fields.get("return_result_in_response")
    inline = False if inline_raw in (None, "") else parse_bool(inline_raw)
    if inline is None:
        errors["return_result_in_response"] = ["The return result in response field must be true or false."]
    url = _text(form.fields, "webhook_url", errors)
    if url is not None:
        problem = webhook_url_problem(url, allow_http_webhooks)
        if problem:
            errors["webhook_url"] = [problem]
    if errors:
        return None, errors
    assert image is not None and model_slug is not None and inline is not None
    return SubmitRequest(image=image, width=w, height=h, model=model_slug, language=language, format=fmt,
                         inline=inline, webhook_url=url), {}


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
        return n if n >= 1 else None
    return None


def validate_price(form: Form) -> tuple[tuple[int, int] | None, Errors]:
    """Price quote input: an image file, or ``width`` and ``height``; the same model rules as submit."""
    errors: Errors = {}
    if form.files.get("image") is not None or "image" in form.oversize or "image" in form.fields:
        _, w, h = _check_image(form, errors)
    else:
        w_raw, h_raw = form.fields.get("width"), form.fields.get("height")
        if w_raw is None and h_raw is None:
            errors["image"] = ["The image field is required when width / height is not present."]
        w, h = _positive_int(w_raw) or 0, _positive_int(h_raw) or 0
        if w_raw is not None and not w:
            errors["width"] = ["The width must be an integer of at least 1."]
        if h_raw is not None and not h:
            errors["height"] = ["The height must be an integer of at least 1."]
        if (w_raw is None) != (h_raw is None):
            errors["width" if w_raw is None else "height"] = [
                f"The {'width' if w_raw is None else 'height'} field is required with "
                f"{'height' if w_raw is None else 'width'}."]
    model = _check_model(_text(form.fields, "model", errors), errors)
    if "image" not in errors and "width" not in errors and "height" not in errors and model is not None:
        check_dimensions(model, w, h, "image" if form.files.get("image") else "width", errors)
    fmt = form.fields.get("format")
    if fmt not in (None, "", "text", "json"):
        errors["format"] = ["The selected format is invalid. Use text or json."]
    return (None, errors) if errors else ((w, h), {})
