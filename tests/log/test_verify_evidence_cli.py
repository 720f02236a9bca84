"""flask log verify-evidence: a voucher or certificate checked offline, with no database and
no network (its process is given a database that does not exist)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from app.log.note import Signer
from tests.log.documents import completed_order
from tests.orders.factories import listed_product
from tests.support import flask, ok

NO_DATABASE = "postgresql://nobody@127.0.0.1:9/nothing"


def _verify(app, tmp_path: Path, document: dict[str, Any], vkey: str):
    path = tmp_path / "document.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return flask(app, "log", "verify-evidence", str(path), "--vkey", vkey,
                 DATABASE_URL=NO_DATABASE)


def test_a_voucher_and_a_certificate_verify_offline_and_tampers_fail(app, market, tmp_path):
    vkey = ok(market.client.get("/api/v1/log/public-key"))["vkey"]
    order = completed_order(market)
    voucher = ok(market.client.get(f"/api/v1/orders/{order['id']}/voucher",
                                   headers=market.buyer.headers))
    listing = listed_product(market.client, market.merchant)
    certificate = ok(market.client.get(f"/api/v1/listings/{listing['id']}/certificate",
                                       headers=market.buyer.headers))
    for document in (voucher, certificate):
        result = _verify(app, tmp_path, document, vkey)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert [line.split(":")[0] for line in lines] == [
            "signature", "inclusion", "facts_digest", "consistency"]
        assert all(": ok" in line for line in lines[:3])
        assert lines[3].startswith("consistency: skipped (offline")

    forged = copy.deepcopy(voucher)
    forged["facts"]["quantity"] += 1
    result = _verify(app, tmp_path, forged, vkey)
    assert result.returncode == 1
    assert "facts_digest: FAILED" in result.stdout and "inclusion: ok" in result.stdout

    key_file = tmp_path / "other.vkey"  # the key may be given in a file
    key_file.write_text(Signer.generate("exchange.local/log").verifier.vkey + "\n")
    other = _verify(app, tmp_path, voucher, str(key_file))
    assert other.returncode == 1
    assert "signature: FAILED" in other.stdout and "inclusion: ok" in other.stdout


def test_a_malformed_file_exits_1(app, tmp_path, client):
    vkey = ok(client.get("/api/v1/log/public-key"))["vkey"]
    result = _verify(app, tmp_path, {"facts": {}}, vkey)
    assert result.returncode == 1 and "malformed" in result.stderr
