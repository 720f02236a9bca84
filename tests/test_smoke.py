from app.parties.models import Role
from tests.factories import make_member


def test_me_answers_for_a_registered_party(client):
    member = make_member(Role.MERCHANT)
    response = client.get("/api/v1/parties/me", headers=member.headers)
    assert response.status_code == 200
    assert response.json["id"] == member.id
