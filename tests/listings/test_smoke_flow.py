from app.parties.models import Role
from tests.factories import make_member
from tests.listings.factories import listing_body


def test_standard_listing_goes_to_review_and_is_approved(client):
    merchant = make_member(Role.MERCHANT)
    operator = make_member(Role.OPERATOR)
    created = client.post("/api/v1/listings", json=listing_body(merchant), headers=merchant.headers)
    assert created.status_code == 201, created.json
    listing_id = created.json["id"]
    submitted = client.post(f"/api/v1/listings/{listing_id}/submit", headers=merchant.headers)
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["status"] == "pending_review"
    reviewed = client.post(f"/api/v1/listings/{listing_id}/review", headers=operator.headers,
                           json={"decision": "approve", "reason": "Source verified"})
    assert reviewed.status_code == 200, reviewed.json
    assert reviewed.json["status"] == "listed"
    detail = client.get(f"/api/v1/listings/{listing_id}", headers=make_member(Role.BUYER).headers)
    assert detail.status_code == 200
    assert detail.headers["ETag"] == f'"{detail.json["version"]}"'
    trace = client.get(f"/api/v1/listings/{listing_id}/trace", headers=operator.headers)
    assert [e["action"] for e in trace.json] == ["listing.created", "listing.submitted",
                                                  "listing.reviewed"]
