"""Vouchers and certificates on paper: GET /orders/{id}/voucher and GET /listings/{id}/certificate
with Accept: application/pdf answer a real PDF (read back with pypdf) showing the facts under
Chinese and English labels and the evidence, with a QR code (decoded from the rendered page)
of the public verification page; JSON stays the default, and the PDF is refused to whoever
the JSON is refused to."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.log.printing import verification_qr, verification_url
from app.parties.models import Role
from tests.factories import make_member
from tests.listings.factories import listing_body
from tests.log.documents import completed_order, pdf_qr_codes, pdf_text, unwrapped
from tests.orders.factories import listed_product, order_body
from tests.support import ok, problem

PDF = {"Accept": "application/pdf"}


def _voucher_url(order: dict[str, Any]) -> str:
    return f"/api/v1/orders/{order['id']}/voucher"


def _certificate_url(listing: dict[str, Any]) -> str:
    return f"/api/v1/listings/{listing['id']}/certificate"


def _pdf(client: FlaskClient, url: str, headers: dict[str, str]) -> bytes:
    response = client.get(url, headers={**headers, **PDF})
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    return response.data


def test_a_voucher_prints_its_facts_number_evidence_and_a_qr_code_of_its_page(market):
    order = completed_order(market, quantity=2)
    voucher = ok(market.client.get(_voucher_url(order), headers=market.buyer.headers))
    number, evidence = voucher["voucher_no"], voucher["evidence"]
    response = market.client.get(_voucher_url(order), headers={**market.buyer.headers, **PDF})
    assert response.headers["Content-Disposition"] == f'attachment; filename="{number}.pdf"'

    text = pdf_text(_pdf(market.client, _voucher_url(order), market.buyer.headers))
    for shown in ("交易凭证", "Transaction Voucher", number, "事实 Facts", "存证 Evidence",
                  "买方", "Buyer", market.buyer.party.name, market.buyer.party.credit_code,
                  "卖方", "Merchant", market.merchant.party.name, "订单编号", order["id"],
                  "总金额", "Total amount", "日志索引", "Log index", str(evidence["log_index"]),
                  "叶子哈希", "Leaf hash", "签名检查点", "Signed checkpoint", "exchange.local/log"):
        assert unwrapped(shown) in unwrapped(text), shown
    amount = voucher["facts"]["total_amount"]
    assert unwrapped(f"{amount // 100:,}.{amount % 100:02d} CNY") in unwrapped(text)
    assert evidence["leaf_hash"] in unwrapped(text)
    assert unwrapped(evidence["checkpoint"].split("\n")[2]) in unwrapped(text)  # the root
    assert pdf_qr_codes(_pdf(market.client, _voucher_url(order), market.buyer.headers)) == [
        f"http://127.0.0.1:5000/public/verify?document={number}"]


def test_a_certificate_prints_its_facts_and_a_qr_code_of_its_page(market):
    listing = listed_product(market.client, market.merchant,
                             title="城市公交 <b>客流</b> & <font size=40>ridership</font>")
    certificate = ok(market.client.get(_certificate_url(listing), headers=market.buyer.headers))
    number = certificate["certificate_no"]
    data = _pdf(market.client, _certificate_url(listing), market.buyer.headers)
    text = pdf_text(data)
    for shown in ("数据产品登记证书", "Data Product Registration Certificate", number,
                  "数据资源持有者", "数据产品经营者", "Operator of the data product",
                  market.merchant.party.name, "交付方式", "Delivery mode", "上架时间",
                  certificate["evidence"]["leaf_hash"]):
        assert unwrapped(shown) in unwrapped(text), shown
    # The title is text on paper, not markup for the PDF's layout.
    assert unwrapped("<b>客流</b> & <font size=40>ridership</font>") in unwrapped(text)
    assert pdf_qr_codes(data) == [f"http://127.0.0.1:5000/public/verify?document={number}"]


def test_the_qr_code_points_at_the_configured_public_address(market, monkeypatch):
    monkeypatch.setitem(market.app.config, "PUBLIC_BASE_URL", "https://exchange.example/")
    order = completed_order(market)
    number = ok(market.client.get(_voucher_url(order),
                                  headers=market.buyer.headers))["voucher_no"]
    expected = f"https://exchange.example/public/verify?document={number}"
    assert verification_url(number) == expected
    assert verification_qr(number).designator.endswith("-M")  # error correction M
    assert pdf_qr_codes(_pdf(market.client, _voucher_url(order), market.buyer.headers)) == [
        expected]
    assert expected in unwrapped(pdf_text(
        _pdf(market.client, _voucher_url(order), market.buyer.headers)))


def test_the_same_document_prints_to_the_same_bytes(market):
    order = completed_order(market)
    first = _pdf(market.client, _voucher_url(order), market.buyer.headers)
    assert _pdf(market.client, _voucher_url(order), market.merchant.headers) == first


@pytest.mark.parametrize(("accept", "served"), [
    (None, "application/json"),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    ("application/*", "application/json"),
    ("application/json, application/pdf;q=0.5", "application/json"),
    ("application/pdf, application/json;q=0.5", "application/pdf"),
    ("text/html, application/pdf;q=0.9", "application/pdf"),
])
def test_json_stays_the_default_and_accept_may_ask_for_the_pdf(market, accept, served):
    order = completed_order(market)
    listing = listed_product(market.client, market.merchant)
    headers = {**market.buyer.headers, **({"Accept": accept} if accept else {})}
    for url in (_voucher_url(order), _certificate_url(listing)):
        response = market.client.get(url, headers=headers)
        assert (response.status_code, response.mimetype) == (200, served)


@pytest.mark.parametrize("accept", ["text/html", "image/png", "text/csv, application/pdf;q=0",
                                    "application/xml"])
def test_an_accept_naming_neither_json_nor_pdf_is_406(market, accept):
    order = completed_order(market)
    listing = listed_product(market.client, market.merchant)
    for url in (_voucher_url(order), _certificate_url(listing)):
        body = problem(market.client.get(url, headers={**market.buyer.headers,
                                                       "Accept": accept}),
                       406, "not_acceptable")
        assert "application/pdf" in body["detail"]


def test_the_pdf_is_refused_to_whoever_the_json_is_refused_to(market):
    order = completed_order(market)
    client = market.client
    url = _voucher_url(order)
    stranger, other_merchant = make_member(Role.BUYER), make_member(Role.MERCHANT)
    problem(client.get(url, headers=PDF), 401, "unauthorized")
    for member in (stranger, other_merchant):
        for accept in (PDF, {}):
            problem(client.get(url, headers={**member.headers, **accept}), 404)
    for member in (market.buyer, market.merchant, market.operator, market.regulator):
        _pdf(client, url, member.headers)

    listing = listed_product(client, market.merchant)
    unpaid = ok(client.post("/api/v1/orders", json=order_body(listing),
                            headers=market.buyer.headers), 201)
    problem(client.get(_voucher_url(unpaid), headers={**market.buyer.headers, **PDF}), 409,
            "invalid_transition")

    draft = ok(client.post("/api/v1/listings", json=listing_body(market.merchant),
                           headers=market.merchant.headers), 201)
    problem(client.get(_certificate_url(draft), headers={**stranger.headers, **PDF}), 404)
    problem(client.get(_certificate_url(draft), headers={**market.merchant.headers, **PDF}),
            409, "invalid_transition")
    problem(client.get(_certificate_url(listing), headers=PDF), 401, "unauthorized")
