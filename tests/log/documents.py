"""Completed orders and the evidence checks the voucher and certificate tests share."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pypdf
import pypdfium2
import zxingcpp
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit import AuditEntry, digest
from app.db import unit_of_work
from app.log.checkpoint import open_checkpoint
from app.log.merkle import leaf_hash, verify_inclusion
from app.log.note import Verifier
from tests.orders.factories import Market, listed_product, order_body
from tests.support import ok


def completed_order(market: Market, **overrides: Any) -> dict[str, Any]:
    """An order placed, paid by transfer, delivered and accepted, through the API."""
    client = market.client
    listing = listed_product(client, market.merchant)
    order = ok(client.post("/api/v1/orders", json=order_body(listing, **overrides),
                           headers=market.buyer.headers), 201)
    ok(client.post(f"/api/v1/orders/{order['id']}/payments/confirm", json={"reference": "B-1"},
                   headers=market.operator.headers))
    ok(client.post(f"/api/v1/orders/{order['id']}/deliver", headers=market.merchant.headers,
                   json={"delivery_ref": "grant-1", "checksum": "sha256:00"}))
    return ok(client.post(f"/api/v1/orders/{order['id']}/accept",
                          headers=market.buyer.headers))


def verifier(client: FlaskClient) -> Verifier:
    return Verifier.from_vkey(ok(client.get("/api/v1/log/public-key"))["vkey"])


def assert_proves_its_facts(document: dict[str, Any], key: Verifier) -> None:
    """The document's evidence holds by the RFC's verifiers, independently of the service."""
    evidence = document["evidence"]
    checkpoint = open_checkpoint(evidence["checkpoint"], key)
    assert checkpoint.tree_size == evidence["tree_size"]
    leaf = evidence["leaf"].encode()
    assert leaf_hash(leaf).hex() == evidence["leaf_hash"]
    assert verify_inclusion(leaf_hash(leaf), evidence["log_index"], evidence["tree_size"],
                            [bytes.fromhex(h) for h in evidence["inclusion_proof"]],
                            checkpoint.root_hash)
    assert json.loads(leaf)["payload_digest"] == digest(document["facts"])


def issued_entries(action: str) -> int:
    """How many entries issued documents of this kind (`voucher.issued`, ...)."""
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == action))


def pdf_text(data: bytes) -> str:
    """The text of every page of a PDF, as a reader extracts it (pypdf)."""
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def unwrapped(text: str) -> str:
    """Text without the spaces and line breaks a PDF's layout put in it."""
    return re.sub(r"\s+", "", text)


def pdf_qr_codes(data: bytes) -> list[str]:
    """What the QR codes on a PDF's pages say, decoded from the pages rendered (PDFium, then
    zxing-cpp): what a phone reads off the paper."""
    document = pypdfium2.PdfDocument(data)
    try:
        return [code.text for page in document
                for code in zxingcpp.read_barcodes(page.render(scale=2).to_pil())]
    finally:
        document.close()
