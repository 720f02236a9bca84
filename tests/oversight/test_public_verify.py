"""The public verification page (GET and POST /public/verify): HTML for anyone, no key. By
number it runs the evidence log's checks on the voucher or certificate of that number and
shows them, never its facts; pasted, a document is checked as POST /evidence/verify checks it.
Everything shown is escaped."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.audit import AuditEntry
from app.extensions import db
from tests.log.documents import completed_order
from tests.orders.factories import listed_product
from tests.support import ok, problem

PAGE = "/public/verify"
CHECKS = ("signature", "inclusion", "facts_digest", "consistency")


@pytest.fixture
def voucher(market) -> dict[str, Any]:
    order = completed_order(market)
    return ok(market.client.get(f"/api/v1/orders/{order['id']}/voucher",
                                headers=market.buyer.headers))


def _html(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def _by_number(client: FlaskClient, number: str) -> str:
    return _html(client.get(PAGE, query_string={"document": number}))


def _pasted(client: FlaskClient, text: str) -> str:
    return _html(client.post(PAGE, data={"document_json": text}))


def _results(html: str) -> list[str]:
    """pass or fail for each check row, in the order shown."""
    return re.findall(r'<td class="(pass|fail)">', html)


def _verdict(html: str) -> str:
    return re.search(r'<p class="verdict (pass|fail)">', html).group(1)


def test_the_page_is_html_for_anyone_under_a_policy_of_its_own(client):
    response = client.get(PAGE)
    html = _html(response)
    assert 'name="document"' in html and 'name="document_json"' in html
    assert "核验" in html and "Verify" in html
    assert "<script" not in html
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "style-src 'sha256-" in policy
    assert "script-src" not in policy and "form-action 'self'" in policy
    assert 'class="verdict' not in html  # nothing asked, nothing checked


def test_a_genuine_voucher_looked_up_by_its_number_passes_every_check_without_its_facts(
        market, voucher):
    html = _by_number(market.client, voucher["voucher_no"])
    assert _verdict(html) == "pass"
    assert _results(html) == ["pass"] * len(CHECKS)
    assert voucher["evidence"]["leaf_hash"] in html
    assert "交易凭证 Transaction voucher" in html
    facts = voucher["facts"]
    for private in (facts["buyer"]["name"], facts["buyer"]["credit_code"], facts["order_id"],
                    facts["merchant"]["name"], voucher["evidence"]["leaf"]):
        assert private not in html


def test_a_certificate_looked_up_by_its_number_passes(market):
    listing = listed_product(market.client, market.merchant)
    certificate = ok(market.client.get(f"/api/v1/listings/{listing['id']}/certificate",
                                       headers=market.buyer.headers))
    html = _by_number(market.client, certificate["certificate_no"])
    assert (_verdict(html), _results(html)) == ("pass", ["pass"] * len(CHECKS))
    assert "数据产品登记证书 Registration certificate" in html


def test_a_voucher_whose_facts_were_changed_behind_the_service_fails_by_its_number(
        market, voucher):
    forged = {**voucher["facts"], "total_amount": voucher["facts"]["total_amount"] // 10}
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        table = AuditEntry.__table__
        connection.execute(sa.update(table).where(table.c.action == "voucher.issued")
                           .values(details=forged))
    html = _by_number(market.client, voucher["voucher_no"])
    assert _verdict(html) == "fail"
    assert _results(html) == ["pass", "pass", "fail", "pass"]


@pytest.mark.parametrize("number", ["TV-999999", "RC-{index}", "TV-0{index}", "TV-{index}x",
                                    "tv-{index}", "Voucher 1", "TV-"])
def test_a_number_of_no_such_document_is_said_to_be_none(market, voucher, number):
    asked = number.format(index=voucher["evidence"]["log_index"])
    html = _by_number(market.client, asked)
    assert _verdict(html) == "fail"
    assert "No voucher or certificate has the number" in html
    assert _results(html) == []


def test_a_pasted_genuine_voucher_passes_and_shows_the_facts_pasted(market, voucher):
    html = _pasted(market.client, json.dumps(voucher, ensure_ascii=False))
    assert (_verdict(html), _results(html)) == ("pass", ["pass"] * len(CHECKS))
    assert voucher["facts"]["buyer"]["name"] in html
    assert voucher["voucher_no"] in html


def test_a_pasted_voucher_with_a_changed_fact_fails_its_facts_digest(market, voucher):
    forged = copy.deepcopy(voucher)
    forged["facts"]["total_amount"] += 1
    html = _pasted(market.client, json.dumps(forged))
    assert _verdict(html) == "fail"
    assert _results(html) == ["pass", "pass", "fail", "pass"]


def test_the_page_checks_as_post_evidence_verify_does(market, voucher):
    forged = copy.deepcopy(voucher)
    forged["evidence"]["tree_size"] += 1
    served = ok(market.client.post("/api/v1/evidence/verify", json=forged))
    html = _pasted(market.client, json.dumps(forged))
    assert _results(html) == ["pass" if check["ok"] else "fail" for check in served["checks"]]
    assert _verdict(html) == ("pass" if served["valid"] else "fail")


def test_what_is_not_a_document_is_named_so(market):
    assert "What was pasted is not JSON." in _pasted(market.client, "TV-1, please")
    html = _pasted(market.client, json.dumps({"facts": 1}))
    assert "is not a voucher or certificate" in html
    assert "evidence" in html and "facts" in html  # what is wrong with it
    assert "not JSON" in _pasted(market.client, "[" * 50_000 + "]" * 50_000)  # too deep
    assert 'class="verdict' not in _pasted(market.client, "   ")  # nothing pasted


def test_hostile_input_is_shown_as_text(market, voucher):
    script = "<script>alert(1)</script>"
    html = _by_number(market.client, script)
    assert script not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    forged = copy.deepcopy(voucher)
    forged["voucher_no"] = "<b onmouseover=alert(2)>TV</b>"
    forged["facts"]["buyer"]["name"] = '"><img src=x onerror=alert(3)>'
    html = _pasted(market.client, json.dumps(forged))
    assert "<b onmouseover" not in html and "<img src=x" not in html
    assert "&lt;b onmouseover=alert(2)&gt;TV&lt;/b&gt;" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html

    html = _pasted(market.client, f"</textarea>{script}")
    assert script not in html and "&lt;/textarea&gt;&lt;script&gt;" in html


def test_a_form_without_its_field_is_a_422_problem(client):
    problem(client.post(PAGE, data={}), 422, "validation_error")
    problem(client.get(PAGE, query_string={"document": "TV-" + "1" * 60}), 422,
            "validation_error")
