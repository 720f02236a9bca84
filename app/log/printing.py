"""Vouchers and certificates on paper: an A4 PDF of a document's facts, under Chinese and
English labels, and of its evidence (number, log index, leaf hash, the signed checkpoint),
with a QR code of the public page that verifies it.

reportlab draws the Chinese text with its built-in CID font (STSong-Light, whose glyphs the
reader's PDF viewer supplies: no font file is shipped or embedded) and segno makes the QR
code, drawn as vector squares. The paper carries no proof: whoever holds it scans the code
(or types the number) and the exchange's public page runs the checks; whoever holds the JSON
document verifies it offline.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import segno
from flask import current_app
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

# The public verification page (`oversight.routes`), which the QR code points at.
VERIFY_PATH = "/public/verify"

_FONT = "STSong-Light"  # Chinese text (and the default)
_LATIN = "Helvetica"  # runs of ASCII text within it
_MONO = "Courier"  # hashes, the signed note, the address
pdfmetrics.registerFont(UnicodeCIDFont(_FONT))
_ASCII_RUN = re.compile(r"([\x20-\x7e]+)")  # split() keeps the runs: every other part

_TITLE = ParagraphStyle("title", fontName=_FONT, fontSize=16, leading=21)
_NUMBER = ParagraphStyle("number", fontName=_FONT, fontSize=11, leading=21, alignment=TA_RIGHT)
_HEADING = ParagraphStyle("heading", fontName=_FONT, fontSize=11, leading=14,
                          spaceBefore=4 * mm, spaceAfter=1 * mm)
_LABEL = ParagraphStyle("label", fontName=_FONT, fontSize=8, leading=10.5,
                        textColor=colors.HexColor("#444444"), wordWrap="CJK")
_VALUE = ParagraphStyle("value", fontName=_FONT, fontSize=9, leading=11.5, wordWrap="CJK")
_CODE = ParagraphStyle("code", fontName=_MONO, fontSize=7.5, leading=9.5, wordWrap="CJK")
_CAPTION = ParagraphStyle("caption", fontName=_FONT, fontSize=7.5, leading=9.5,
                          alignment=TA_CENTER, wordWrap="CJK")
_QR_SIZE = 36 * mm
_LINES = TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                     ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
                     ("LEFTPADDING", (0, 0), (-1, -1), 2),
                     ("TOPPADDING", (0, 0), (-1, -1), 2),
                     ("BOTTOMPADDING", (0, 0), (-1, -1), 2)])
_PLAIN = TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                     ("LEFTPADDING", (0, 0), (-1, -1), 0),
                     ("RIGHTPADDING", (0, 0), (-1, -1), 0)])


@dataclass(frozen=True)
class Line:
    """One fact of a document as printed: its label in Chinese and in English, and its value."""

    zh: str
    en: str
    value: str


def verification_url(number: str) -> str:
    """The public page that looks the document up by its number and checks it."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}{VERIFY_PATH}?{urlencode({'document': number})}"


def verification_qr(number: str) -> segno.QRCode:
    """The QR code printed on the document: its verification URL."""
    return segno.make(verification_url(number), error="m", micro=False)


def document_pdf(*, title_zh: str, title_en: str, number: str, lines: Sequence[Line],
                 evidence: Mapping[str, Any]) -> bytes:
    """One document as a PDF: its title and number, its facts, its evidence and QR code."""
    output = io.BytesIO()
    # invariant: the same document prints to the same bytes (no creation time, no random id).
    pdf = SimpleDocTemplate(output, pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm,
                            topMargin=14 * mm, bottomMargin=14 * mm,
                            title=f"{title_zh} {title_en} {number}", author="",
                            invariant=True)
    proof = [
        Line("编号", "Number", number),
        Line("日志索引", "Log index", str(evidence["log_index"])),
        Line("叶子哈希", "Leaf hash (SHA-256)", evidence["leaf_hash"]),
        Line("树大小", "Tree size", str(evidence["tree_size"])),
    ]
    checkpoint = [_lines(proof, code=frozenset({"叶子哈希"})), Spacer(0, 1.5 * mm),
                  Paragraph(_markup("签名检查点 Signed checkpoint"), _LABEL),
                  Paragraph(escape(evidence["checkpoint"]).replace("\n", "<br/>"), _CODE)]
    scan = [_QrCode(verification_qr(number), _QR_SIZE),
            Paragraph(_markup("扫码核验 Scan to verify") + "<br/>"
                      f"<font face='{_MONO}'>{escape(verification_url(number))}</font>",
                      _CAPTION)]
    pdf.build([
        Table([[Paragraph(f"{_markup(title_zh)}<br/><font size='12'>{_markup(title_en)}</font>",
                          _TITLE),
                Paragraph(_markup(f"编号 No. {number}"), _NUMBER)]],
              colWidths=[None, 50 * mm], style=_PLAIN),
        Paragraph(_markup("事实 Facts"), _HEADING),
        _lines(lines),
        Paragraph(_markup("存证 Evidence"), _HEADING),
        Table([[checkpoint, scan]], colWidths=[None, _QR_SIZE + 8 * mm], style=TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0),
            ("RIGHTPADDING", (-1, 0), (-1, 0), 0)])),
    ])
    return output.getvalue()


def _markup(text_: str) -> str:
    """Text as a paragraph shows it: escaped (never read as markup), its ASCII runs in a Latin
    font and the rest in the Chinese one."""
    return "".join(f"<font face='{_LATIN}'>{escape(part)}</font>" if n % 2 else escape(part)
                   for n, part in enumerate(_ASCII_RUN.split(text_)))


def _lines(lines: Iterable[Line], code: frozenset[str] = frozenset()) -> Table:
    rows = [[Paragraph(_markup(f"{line.zh} {line.en}"), _LABEL),
             Paragraph(escape(line.value), _CODE) if line.zh in code
             else Paragraph(_markup(line.value), _VALUE)]
            for line in lines]
    return Table(rows, colWidths=[46 * mm, None], style=_LINES)


class _QrCode(Flowable):
    """A segno QR code drawn as filled squares, `size` wide with its quiet zone."""

    def __init__(self, code: segno.QRCode, size: float) -> None:
        super().__init__()
        self.code, self.width, self.height = code, size, size

    def draw(self) -> None:
        rows = list(self.code.matrix_iter(scale=1, border=4))
        module = self.width / len(rows)
        self.canv.setFillColor(colors.black)
        for y, row in enumerate(rows):
            for x, dark in enumerate(row):
                if dark:
                    self.canv.rect(x * module, self.height - (y + 1) * module, module, module,
                                   stroke=0, fill=1)


# --- what the facts look like on paper ---------------------------------------------------------

def text(value: Any) -> str:
    """A fact as printed: — for none, 是 Yes / 否 No, lists joined, times in UTC."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "是 Yes" if value else "否 No"
    if isinstance(value, list):
        return "; ".join(text(item) for item in value)
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    return str(value)


def party(value: Mapping[str, Any] | None) -> str:
    """A party as printed: its name and unified social credit code, then its id."""
    if not value:
        return "—"
    return f"{value.get('name') or '—'} ({value.get('credit_code') or '—'}) {value.get('id')}"


def parties(values: Iterable[Mapping[str, Any]] | None) -> str:
    """Several parties as printed, one after the other."""
    return "; ".join(party(value) for value in values or []) or "—"


def usage_lines(scope: Mapping[str, Any]) -> list[Line]:
    """What a licence or a usage scope allows: purposes, territory, resale, derivatives."""
    return [Line("使用目的", "Purposes", text(scope.get("purposes"))),
            Line("地域范围", "Territory", text(scope.get("territory"))),
            Line("可否转售", "Resale", text(scope.get("resale"))),
            Line("可否衍生", "Derivatives", text(scope.get("derivatives")))]


def money(amount: int | None, currency: str | None) -> str:
    """An amount in minor units (fen) as printed: 1,200.00 CNY."""
    if amount is None:
        return "—"
    return f"{amount // 100:,}.{amount % 100:02d} {currency or ''}".rstrip()
