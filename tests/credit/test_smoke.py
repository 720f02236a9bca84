from app.parties.models import Role
from tests.factories import make_member
from tests.support import seal_log


def test_severe_finding_blacklists_and_restricts(client):
    regulator = make_member(Role.REGULATOR)
    merchant = make_member(Role.MERCHANT)
    recorded = client.post("/api/v1/credit/events", headers=regulator.headers, json={
        "party_id": merchant.id, "kind": "data_tampering", "severity": "severe",
        "description": "Altered delivered rows", "evidence_ref": "case-1"})
    assert recorded.status_code == 201, recorded.json
    file = client.get(f"/api/v1/credit/parties/{merchant.id}", headers=merchant.headers)
    assert file.status_code == 200, file.json
    assert file.json["score"] == 600 and file.json["level"] == "C"
    assert file.json["blacklisted"] is True
    assert {p["kind"] for p in file.json["penalties"]} == {"trade_restriction", "listing_ban"}
    public = client.get("/api/v1/credit/blacklist")
    assert [row["party_id"] for row in public.json] == [merchant.id]
    assert "event_id" not in public.json[0]
    full = client.get("/api/v1/credit/blacklist", headers=regulator.headers)
    assert full.json[0]["event_id"] == recorded.json["id"]
    csv = client.get("/api/v1/credit/blacklist", headers={**regulator.headers,
                                                         "Accept": "text/csv"})
    assert csv.mimetype == "text/csv" and merchant.party.credit_code in csv.get_data(as_text=True)
    seal_log()  # the entries verified are those in the evidence log
    verify = client.get("/api/v1/credit/ledger/verify", headers=regulator.headers)
    assert verify.json["valid"] is True and verify.json["entries"] == 1
