"""The response bodies deAPI uses, in one place (deapi-api.md §4).

- error envelope ``{"data": null, "message": ..., "errors": [], "statusCode": N}`` (401, 404, 500, ...)
- Laravel validation ``{"message": first_error, "errors": {field: [messages]}}`` (422)
- ``{"message": "Too Many Attempts."}`` (429)
- an HTML page for injected 5xx, as a gateway in front of the API would send
"""

from __future__ import annotations

from aiohttp import web

from .validation import Errors

GATEWAY_PAGES = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
}


def envelope(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"data": None, "message": message, "errors": [], "statusCode": status},
                             status=status, headers=headers)


def validation_error(errors: Errors) -> web.Response:
    first = next(iter(errors.values()))[0]
    return web.json_response({"message": first, "errors": errors}, status=422)


def not_enough_balance() -> web.Response:
    return validation_error({"balance": ["Not enough balance."]})


def too_many(headers: dict[str, str]) -> web.Response:
    return web.json_response({"message": "Too Many Attempts."}, status=429, headers=headers)


def gateway_error(status: int, headers: dict[str, str] | None = None) -> web.Response:
    title = GATEWAY_PAGES.get(status, f"{status} Error")
    html = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            f"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return web.Response(status=status, text=html, content_type="text/html", headers=headers)
