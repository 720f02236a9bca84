"""Response headers every answer carries, so browsers and proxies treat the API safely."""

from __future__ import annotations

from flask import Flask, Response, request

_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The API's answers are data, never pages: nothing in them may run or be framed, and nothing
# private may be cached on the way. (The /docs explorer needs its own scripts, so not there.)
_API = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def init_security_headers(app: Flask) -> None:
    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in _ALWAYS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            for name, value in _API.items():
                response.headers.setdefault(name, value)
        if app.config.get("HSTS_SECONDS"):
            response.headers.setdefault(
                "Strict-Transport-Security", f"max-age={app.config['HSTS_SECONDS']}")
        return response
