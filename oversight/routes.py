"""Public pages: server-rendered HTML for anyone, no API key (Jinja escapes every value)."""

from __future__ import annotations

import base64
import hashlib
from http import HTTPStatus
from typing import Any

from flask import Response, render_template
from flask.views import MethodView

from app.api import Blueprint
from oversight import verification
from oversight.schemas import PastedDocumentSchema, VerifyQueryArgsSchema

blp = Blueprint("public", __name__, url_prefix="/public", template_folder="templates",
                description="Public pages (HTML, no API key): verify a voucher or certificate")

# The page's own style, inline; the policy admits it by its hash and nothing else.
STYLE = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",
system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430;line-height:1.55}
main{max-width:56rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.45rem;margin:.2rem 0 1rem}h1 small{display:block;font-size:1rem;color:#5a6472}
form{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:1rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin-bottom:.4rem}
input,textarea{width:100%;box-sizing:border-box;font:inherit;padding:.45rem;
border:1px solid #b9c0ca;border-radius:4px}
textarea{min-height:9rem;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem}
button{margin-top:.6rem;font:inherit;padding:.4rem 1.1rem;border:0;border-radius:4px;
background:#1f5fbf;color:#fff;cursor:pointer}
section{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:1rem}
.verdict{font-size:1.2rem;font-weight:700}.pass{color:#1a7f37}.fail{color:#b42318}
table{border-collapse:collapse;width:100%;margin:.6rem 0}
th,td{text-align:left;vertical-align:top;border-bottom:1px solid #e4e7eb;padding:.35rem .5rem}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.82rem;
word-break:break-all;white-space:pre-wrap}
""".strip()
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
_PAGE_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
_HTML = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _page(**context: Any) -> Response:
    html = render_template("oversight/verify.html", style=STYLE, checks=verification.CHECKS,
                           kinds=verification.KINDS, **context)
    return Response(html, mimetype="text/html", headers=_PAGE_HEADERS)


@blp.route("/verify", operation_ids={"get": "showVerifyPage", "post": "verifyPastedDocument"})
class VerifyPage(MethodView):
    @blp.doc(security=[], responses={200: _HTML})
    @blp.arguments(VerifyQueryArgsSchema, location="query")
    def get(self, args: dict[str, Any]) -> Response:
        """The verification page; with `document`, the checks of the document of that number.

        Its facts are not shown: numbers are easy to guess, and a voucher's facts are its
        parties' alone.
        """
        number = args.get("document")
        result = verification.check_number(number) if number else None
        return _page(number=number, result=result)

    @blp.doc(security=[], responses={200: _HTML})
    @blp.arguments(PastedDocumentSchema, location="form")
    @blp.alt_response(413, response=HTTPStatus.REQUEST_ENTITY_TOO_LARGE.name)
    def post(self, form: dict[str, Any]) -> Response:
        """The checks of a voucher or certificate pasted into the page's form."""
        pasted = form["document_json"]
        result = verification.check_pasted(pasted) if pasted.strip() else None
        return _page(pasted=pasted, result=result)
