"""Parties and API keys over HTTP: registration, authentication, roles, key issue and revocation."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa

from app.audit import AuditEntry
from app.extensions import db
from app.parties.credit_code import check_character
from app.parties.models import ApiKey, Party, Role
from tests.factories import PartyBodyFactory, bearer, make_member, new_credit_code
from tests.support import seal_log

PARTIES = "/api/v1/parties"
ME = "/api/v1/parties/me"
PROBLEM = "application/problem+json"


def count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def audit_trail() -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)))


def keys_of(party_id: str) -> list[ApiKey]:
    return list(db.session.scalars(
        sa.select(ApiKey).where(ApiKey.party_id == uuid.UUID(party_id))))


def assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.json
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["detail"] and body["type"]


def issue_key(client, member, party_id: str | None = None):
    return client.post(f"{PARTIES}/{party_id or member.id}/api-keys", headers=member.headers)


# Registration


def test_registering_returns_201_with_the_party_and_a_key_that_authenticates_it(client):
    body = PartyBodyFactory(roles=["merchant", "buyer"])
    response = client.post(PARTIES, json=body)

    assert response.status_code == 201
    created = response.json
    assert uuid.UUID(created["id"])
    assert created["name"] == body["name"]
    assert created["credit_code"] == body["credit_code"]
    assert created["kind"] == "enterprise"
    assert created["roles"] == ["merchant", "buyer"]
    assert created["api_key"].startswith("dx_")
    me = client.get(ME, headers=bearer(created["api_key"]))
    assert me.status_code == 200
    assert me.json["id"] == created["id"]
    assert "api_key" not in me.json


def test_a_lower_case_credit_code_is_stored_upper_case(client):
    code = new_credit_code()
    response = client.post(PARTIES, json=PartyBodyFactory(credit_code=f" {code.lower()} "))

    assert response.status_code == 201
    assert response.json["credit_code"] == code
    assert db.session.scalar(sa.select(Party.credit_code)) == code


@pytest.mark.parametrize("code", [
    "91350100M000100Y44",  # wrong check character
    "91350100I000100Y43",  # a letter outside the charset
    "91350100M000100Y4",  # 17 characters
])
def test_an_invalid_credit_code_is_refused_with_422_and_nothing_is_stored(client, code):
    response = client.post(PARTIES, json=PartyBodyFactory(credit_code=code))

    assert_problem(response, 422, "invalid_credit_code")
    assert "credit_code" in response.json["errors"]
    assert count(Party) == 0
    assert count(ApiKey) == 0
    assert count(AuditEntry) == 0


def with_check(first17: str) -> str:
    return first17 + check_character(first17)


@pytest.mark.parametrize("code", [
    "000000000000000000",  # one character throughout (its check character fits)
    "111111111111111111",
    with_check("01310000MA1K00001"),  # no registration authority 0
    with_check("B1310000MA1K00001"),  # nor B
    with_check("94310000MA1K00001"),  # market regulation registers organisation types 1-3
    with_check("57310000MA1K00001"),  # civil affairs has no type 7
    with_check("913100A0MA1K00001"),  # the administrative division is six digits
    with_check("91990000MA1K00001"),  # in no province
    with_check("913100000000000000"[:17]),  # an organisation code of zeros
])
def test_a_structurally_invalid_credit_code_is_refused_even_with_its_check_character(
        client, code):
    response = client.post(PARTIES, json=PartyBodyFactory(credit_code=code))

    assert_problem(response, 422, "invalid_credit_code")
    assert "credit_code" in response.json["errors"]
    assert count(Party) == 0


@pytest.mark.parametrize("code", [
    "91310000MA1K000019", "11310000MA1K00002L", "91350100M000100Y43", "911100001000079554",
    "91110000802100433B", with_check("12100000400000624"), with_check("51440300MJL170201"),
    with_check("52310115MJ5006437"), with_check("53100000500021676"),
    with_check("92440300MA5DF4H8X"), with_check("93330782MA2EC1QL6"),
    with_check("Y1440300MA5ERXE20"), with_check("N2330106MF2701234"),
    with_check("31110000400834282"), with_check("81110000MC0000012"),
])
def test_credit_codes_of_every_registration_authority_are_accepted(client, code):
    response = client.post(PARTIES, json=PartyBodyFactory(credit_code=code))

    assert response.status_code == 201, response.json
    assert response.json["credit_code"] == code


def test_a_duplicate_credit_code_is_refused_with_409_and_one_party_remains(client):
    code = new_credit_code()
    first = client.post(PARTIES, json=PartyBodyFactory(credit_code=code))
    assert first.status_code == 201

    again = client.post(PARTIES, json=PartyBodyFactory(credit_code=code))
    spelled_otherwise = client.post(PARTIES, json=PartyBodyFactory(credit_code=code.lower()))

    assert_problem(again, 409, "duplicate_credit_code")
    assert_problem(spelled_otherwise, 409, "duplicate_credit_code")
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(Party).where(Party.credit_code == code)) == 1
    assert count(Party) == 1
    assert count(ApiKey) == 1


# Names


@pytest.mark.parametrize("name", ["   ", "\u3000\u3000", " \u00a0 "])
def test_a_blank_name_is_refused_and_nothing_is_stored(client, name):
    response = client.post(PARTIES, json=PartyBodyFactory(name=name))

    assert_problem(response, 422, "invalid_party_name")
    assert "name" in response.json["errors"]
    assert count(Party) == 0
    assert count(ApiKey) == 0


@pytest.mark.parametrize("name", [
    "Acme \u202eoC ataD",  # right-to-left override: shows as "Acme Data Co"
    "Ac\u200bme Data Co.",  # zero-width space
    "Acme\u200d Data Co.",  # zero-width joiner
    "\ufeffAcme Data Co.",  # byte order mark
    "Acme \u2066Data\u2069 Co.",  # directional isolate
    "Acme\u00adData Co.",  # soft hyphen
    "Acme\u0007 Data Co.",  # a control character
    "Acme\nData Co.",
    "Acme\u3164Data Co.",  # Hangul filler: a letter that shows as nothing
    "Acme Data Co.\ufe0f",  # variation selector
    "Acme\U000e0041 Data Co.",  # tag character
    "...",  # no letter or digit at all
])
def test_a_name_with_invisible_or_direction_characters_is_refused(client, name):
    response = client.post(PARTIES, json=PartyBodyFactory(name=name))

    assert_problem(response, 422, "invalid_party_name")
    assert "name" in response.json["errors"]
    assert count(Party) == 0


def test_a_name_is_stored_trimmed_with_single_spaces(client):
    response = client.post(PARTIES, json=PartyBodyFactory(name="  Acme \u00a0 Data\u3000Co.  "))

    assert response.status_code == 201, response.json
    assert response.json["name"] == "Acme Data Co."
    assert db.session.scalar(sa.select(Party.name)) == "Acme Data Co."


@pytest.mark.parametrize("taken, again", [
    ("Acme Data Co.", "acme data co."),
    ("Acme Data Co.", "\uff21\uff23\uff2d\uff25\u3000Data  Co."),  # full-width, ideographic space
    ("上海数据有限公司", " 上海数据有限公司 "),
    ("Straße Daten GmbH", "STRASSE DATEN GMBH"),
])
def test_a_name_another_party_holds_is_refused_with_409(client, taken, again):
    assert client.post(PARTIES, json=PartyBodyFactory(name=taken)).status_code == 201

    response = client.post(PARTIES, json=PartyBodyFactory(name=again))

    assert_problem(response, 409, "duplicate_party_name")
    assert count(Party) == 1
    assert count(ApiKey) == 1


@pytest.mark.parametrize("role", ["operator", "regulator", "certifier"])
def test_self_registration_cannot_take_a_privileged_role(client, role):
    response = client.post(PARTIES, json=PartyBodyFactory(roles=["buyer", role]))

    assert_problem(response, 403, "forbidden")
    assert count(Party) == 0
    assert count(ApiKey) == 0
    assert count(AuditEntry) == 0


def test_a_merchant_key_does_not_let_a_registration_take_a_privileged_role(client):
    merchant = make_member(Role.MERCHANT)
    before = count(Party)

    response = client.post(PARTIES, json=PartyBodyFactory(roles=["regulator"]),
                           headers=merchant.headers)

    assert_problem(response, 403, "forbidden")
    assert count(Party) == before


def test_an_operator_may_register_another_operator(client):
    operator = make_member(Role.OPERATOR)

    body = PartyBodyFactory(roles=["operator"], kind="institution")
    response = client.post(PARTIES, json=body, headers=operator.headers)

    assert response.status_code == 201
    assert response.json["roles"] == ["operator"]
    new_key = bearer(response.json["api_key"])
    assert client.get(ME, headers=new_key).json["id"] == response.json["id"]
    assert client.get("/api/v1/audit/verify", headers=new_key).status_code == 200
    registered = [e for e in audit_trail() if e.action == "party.registered"
                  and e.subject_id == response.json["id"]]
    assert len(registered) == 1
    assert str(registered[0].actor_id) == operator.id


@pytest.mark.parametrize("roles", [["regulator"], ["certifier"], ["operator", "regulator"]])
def test_an_operator_cannot_register_an_overseer_through_the_api(client, roles):
    """Its first key would be the operator's: regulators and certifiers come from the CLI."""
    operator = make_member(Role.OPERATOR)
    before = (count(Party), count(ApiKey), count(AuditEntry))

    response = client.post(PARTIES, json=PartyBodyFactory(roles=roles, kind="public_agency"),
                           headers=operator.headers)

    assert_problem(response, 403, "forbidden")
    assert (count(Party), count(ApiKey), count(AuditEntry)) == before


def test_registration_with_a_wrong_key_is_refused_rather_than_treated_as_anonymous(client):
    response = client.post(PARTIES, json=PartyBodyFactory(), headers=bearer("dx_not-a-key"))

    assert_problem(response, 401, "unauthorized")
    assert count(Party) == 0


@pytest.mark.parametrize("field, value", [
    ("id", "6f1c1d1e-2b8f-4a51-9d55-1a2b3c4d5e6f"),
    ("created_at", "2024-01-01T00:00:00+00:00"),
    ("api_key", "dx_chosen-by-the-client"),
    ("api_key_id", "6f1c1d1e-2b8f-4a51-9d55-1a2b3c4d5e6f"),
])
def test_server_owned_fields_sent_by_the_client_are_refused(client, field, value):
    response = client.post(PARTIES, json={**PartyBodyFactory(), field: value})

    assert_problem(response, 422, "validation_error")
    assert field in response.json["errors"]
    assert count(Party) == 0
    assert count(ApiKey) == 0


def test_malformed_json_is_a_400_problem_and_not_a_500(client):
    response = client.post(PARTIES, data="{not json", content_type="application/json")

    assert_problem(response, 400, "malformed_json")
    assert count(Party) == 0


# Authentication


def assert_unauthorized(response) -> None:
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_key_is_401_with_a_bearer_challenge(client):
    assert_unauthorized(client.get(ME))


def test_a_wrong_key_is_401(client):
    make_member(Role.BUYER)
    assert_unauthorized(client.get(ME, headers=bearer("dx_" + "A" * 43)))


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer   ",
    "Token {key}",
    "{key}",
])
def test_a_malformed_authorization_header_is_401(client, header):
    member = make_member(Role.BUYER)
    response = client.get(ME, headers={"Authorization": header.format(key=member.key)})
    assert_unauthorized(response)


def test_the_bearer_scheme_is_case_insensitive(client):
    member = make_member(Role.BUYER)
    response = client.get(ME, headers={"Authorization": f"bearer {member.key}"})
    assert response.status_code == 200
    assert response.json["id"] == member.id


def test_a_revoked_key_is_401(client):
    member = make_member(Role.BUYER)
    key_id = keys_of(member.id)[0].id
    assert client.delete(f"{PARTIES}/{member.id}/api-keys/{key_id}",
                         headers=member.headers).status_code == 204

    assert_unauthorized(client.get(ME, headers=member.headers))


def test_each_request_is_authenticated_by_its_own_key(client):
    merchant = make_member(Role.MERCHANT)
    buyer = make_member(Role.BUYER)

    assert client.get(ME, headers=merchant.headers).json["id"] == merchant.id
    assert client.get(ME, headers=buyer.headers).json["id"] == buyer.id
    assert_unauthorized(client.get(ME))


def test_a_buyer_key_is_403_on_an_operator_route(client):
    buyer = make_member(Role.BUYER)

    response = client.get("/api/v1/audit/verify", headers=buyer.headers)

    assert_problem(response, 403, "forbidden")
    assert "WWW-Authenticate" not in response.headers


def test_an_operator_key_passes_the_operator_route(client):
    operator = make_member(Role.OPERATOR)

    response = client.get("/api/v1/audit/verify", headers=operator.headers)

    assert response.status_code == 200
    assert response.json["valid"] is True


# Viewing a party


@pytest.mark.parametrize("viewer_roles, status", [
    ((Role.OPERATOR,), 200),
    ((Role.REGULATOR,), 200),
    ((Role.MERCHANT,), 403),
    ((Role.BUYER,), 403),
    ((Role.BROKER, Role.MERCHANT), 403),
    ((Role.CERTIFIER,), 403),
])
def test_a_party_is_visible_to_operators_and_regulators_only(client, viewer_roles, status):
    target = make_member(Role.MERCHANT)
    viewer = make_member(*viewer_roles)

    response = client.get(f"{PARTIES}/{target.id}", headers=viewer.headers)

    assert response.status_code == status
    if status == 200:
        assert response.json["id"] == target.id
        assert response.json["credit_code"] == target.party.credit_code
    else:
        assert_problem(response, 403, "forbidden")


def test_a_party_sees_itself(client):
    member = make_member(Role.BUYER)

    response = client.get(f"{PARTIES}/{member.id}", headers=member.headers)

    assert response.status_code == 200
    assert response.json["id"] == member.id
    assert response.json["roles"] == ["buyer"]


def test_an_unknown_party_is_404(client):
    operator = make_member(Role.OPERATOR)

    response = client.get(f"{PARTIES}/{uuid.uuid4()}", headers=operator.headers)

    assert_problem(response, 404, "not_found")


def test_a_party_detail_needs_a_key(client):
    member = make_member(Role.BUYER)
    assert_unauthorized(client.get(f"{PARTIES}/{member.id}"))


# Issuing keys


def test_a_party_issues_itself_another_key_that_works_alongside_the_first(client):
    member = make_member(Role.MERCHANT)

    response = issue_key(client, member)

    assert response.status_code == 201
    issued = response.json
    assert issued["api_key"].startswith("dx_") and issued["api_key"] != member.key
    assert issued["prefix"] == issued["api_key"][:10]
    assert issued["revoked_at"] is None
    assert {str(key.id) for key in keys_of(member.id)} >= {issued["id"]}
    assert client.get(ME, headers=bearer(issued["api_key"])).json["id"] == member.id
    assert client.get(ME, headers=member.headers).json["id"] == member.id


def test_an_operator_issues_a_key_for_another_party_that_authenticates_as_that_party(client):
    operator = make_member(Role.OPERATOR)
    merchant = make_member(Role.MERCHANT)

    response = issue_key(client, operator, merchant.id)

    assert response.status_code == 201
    me = client.get(ME, headers=bearer(response.json["api_key"]))
    assert me.json["id"] == merchant.id
    assert len(keys_of(merchant.id)) == 2
    assert len(keys_of(operator.id)) == 1


@pytest.mark.parametrize("roles", [(Role.MERCHANT,), (Role.REGULATOR,)])
def test_another_party_cannot_issue_a_key_for_a_party(client, roles):
    target = make_member(Role.BUYER)
    other = make_member(*roles)

    response = issue_key(client, other, target.id)

    assert_problem(response, 403, "forbidden")
    assert len(keys_of(target.id)) == 1


@pytest.mark.parametrize("roles", [(Role.REGULATOR,), (Role.CERTIFIER,),
                                   (Role.MERCHANT, Role.CERTIFIER)])
def test_an_operator_cannot_issue_a_key_for_a_regulator_or_a_certifier(client, roles):
    """Separation of duties: an operator holding a regulator's key could decide objections."""
    operator = make_member(Role.OPERATOR)
    overseer = make_member(*roles)

    response = issue_key(client, operator, overseer.id)

    assert_problem(response, 403, "forbidden")
    assert len(keys_of(overseer.id)) == 1
    own = issue_key(client, overseer)
    assert own.status_code == 201
    assert client.get(ME, headers=bearer(own.json["api_key"])).json["id"] == overseer.id


def test_an_operator_issuing_a_key_for_an_unknown_party_gets_404(client):
    operator = make_member(Role.OPERATOR)

    response = issue_key(client, operator, str(uuid.uuid4()))

    assert_problem(response, 404, "not_found")
    assert count(ApiKey) == 1


# Revoking keys


def test_revoking_a_key_stops_it_at_once_while_the_other_keys_keep_working(client):
    member = make_member(Role.MERCHANT)
    second = issue_key(client, member).json
    third = issue_key(client, member).json

    response = client.delete(f"{PARTIES}/{member.id}/api-keys/{second['id']}",
                             headers=member.headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert_unauthorized(client.get(ME, headers=bearer(second["api_key"])))
    assert client.get(ME, headers=member.headers).status_code == 200
    assert client.get(ME, headers=bearer(third["api_key"])).status_code == 200
    revoked = {str(key.id): key.revoked_at for key in keys_of(member.id)}
    assert revoked[second["id"]] is not None
    assert revoked[third["id"]] is None


def test_a_party_may_revoke_the_key_it_is_using(client):
    member = make_member(Role.BUYER)
    spare = issue_key(client, member).json
    own_key_id = next(str(k.id) for k in keys_of(member.id) if str(k.id) != spare["id"])

    response = client.delete(f"{PARTIES}/{member.id}/api-keys/{own_key_id}",
                             headers=member.headers)

    assert response.status_code == 204
    assert_unauthorized(client.get(ME, headers=member.headers))
    assert client.get(ME, headers=bearer(spare["api_key"])).status_code == 200


def test_an_operator_may_revoke_another_partys_key(client):
    operator = make_member(Role.OPERATOR)
    merchant = make_member(Role.MERCHANT)
    key_id = keys_of(merchant.id)[0].id

    response = client.delete(f"{PARTIES}/{merchant.id}/api-keys/{key_id}",
                             headers=operator.headers)

    assert response.status_code == 204
    assert_unauthorized(client.get(ME, headers=merchant.headers))
    assert client.get(ME, headers=operator.headers).status_code == 200


@pytest.mark.parametrize("roles", [(Role.MERCHANT,), (Role.REGULATOR,)])
def test_another_party_cannot_revoke_a_partys_key(client, roles):
    target = make_member(Role.BUYER)
    other = make_member(*roles)
    key_id = keys_of(target.id)[0].id

    response = client.delete(f"{PARTIES}/{target.id}/api-keys/{key_id}", headers=other.headers)

    assert_problem(response, 403, "forbidden")
    assert client.get(ME, headers=target.headers).json["id"] == target.id
    assert keys_of(target.id)[0].revoked_at is None


def test_a_key_cannot_be_revoked_through_another_partys_path(client):
    attacker = make_member(Role.BUYER)
    victim = make_member(Role.BUYER)
    victim_key_id = keys_of(victim.id)[0].id

    response = client.delete(f"{PARTIES}/{attacker.id}/api-keys/{victim_key_id}",
                             headers=attacker.headers)

    assert_problem(response, 404, "not_found")
    assert client.get(ME, headers=victim.headers).status_code == 200


def test_revoking_an_unknown_key_is_404(client):
    member = make_member(Role.BUYER)

    response = client.delete(f"{PARTIES}/{member.id}/api-keys/{uuid.uuid4()}",
                             headers=member.headers)

    assert_problem(response, 404, "not_found")


def test_revoking_a_key_twice_is_harmless_and_audited_once(client):
    member = make_member(Role.BUYER)
    spare = issue_key(client, member).json
    path = f"{PARTIES}/{member.id}/api-keys/{spare['id']}"

    assert client.delete(path, headers=member.headers).status_code == 204
    first_revoked_at = next(k.revoked_at for k in keys_of(member.id) if str(k.id) == spare["id"])
    assert client.delete(path, headers=member.headers).status_code == 204

    assert next(k.revoked_at for k in keys_of(member.id)
                if str(k.id) == spare["id"]) == first_revoked_at
    assert [e.action for e in audit_trail()].count("api_key.revoked") == 1


# Listing keys and what is stored


def test_listing_keys_shows_prefixes_and_never_the_keys(client):
    member = make_member(Role.MERCHANT)
    second = issue_key(client, member).json
    client.delete(f"{PARTIES}/{member.id}/api-keys/{second['id']}", headers=member.headers)

    response = client.get(f"{PARTIES}/{member.id}/api-keys", headers=member.headers)

    assert response.status_code == 200
    listed = response.json
    assert {item["id"] for item in listed} == {str(key.id) for key in keys_of(member.id)}
    assert {item["prefix"] for item in listed} == {member.key[:10], second["api_key"][:10]}
    for item in listed:
        assert set(item) == {"id", "prefix", "created_at", "revoked_at"}
    first_id = next(item["id"] for item in listed if item["id"] != second["id"])
    revoked = {item["id"]: item["revoked_at"] is not None for item in listed}
    assert revoked == {first_id: False, second["id"]: True}
    text = response.get_data(as_text=True)
    assert member.key not in text
    assert second["api_key"] not in text


def test_an_operator_lists_another_partys_keys_and_other_parties_cannot(client):
    operator = make_member(Role.OPERATOR)
    merchant = make_member(Role.MERCHANT)
    buyer = make_member(Role.BUYER)

    as_operator = client.get(f"{PARTIES}/{merchant.id}/api-keys", headers=operator.headers)
    as_buyer = client.get(f"{PARTIES}/{merchant.id}/api-keys", headers=buyer.headers)

    assert as_operator.status_code == 200
    assert [item["prefix"] for item in as_operator.json] == [merchant.key[:10]]
    assert_problem(as_buyer, 403, "forbidden")


def test_the_database_keeps_only_the_sha256_of_each_key(client):
    registered = client.post(PARTIES, json=PartyBodyFactory()).json
    party_key = registered["api_key"]
    second_key = client.post(f"{PARTIES}/{registered['id']}/api-keys",
                             headers=bearer(party_key)).json["api_key"]

    stored = {key.key_hash for key in keys_of(registered["id"])}
    assert stored == {hashlib.sha256(raw.encode()).hexdigest()
                      for raw in (party_key, second_key)}
    # No column of any row of any table holds a raw key, nor a key without its prefix.
    with db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                text = repr(tuple(row))
                for raw in (party_key, second_key):
                    assert raw not in text, table.name
                    assert raw.removeprefix("dx_") not in text, table.name


# The audit trail


def test_registration_is_audited_as_the_new_partys_own_act(client):
    response = client.post(PARTIES, json=PartyBodyFactory(roles=["merchant"]))
    party_id = response.json["id"]

    trail = audit_trail()

    assert [entry.action for entry in trail] == ["party.registered", "api_key.issued"]
    registered, issued = trail
    assert (registered.subject_type, registered.subject_id) == ("parties", party_id)
    assert str(registered.actor_id) == party_id
    assert registered.details["roles"] == ["merchant"]
    assert registered.details["credit_code"] == response.json["credit_code"]
    assert (issued.subject_type, issued.subject_id) == ("api_keys", response.json["api_key_id"])
    assert str(issued.actor_id) == party_id
    assert issued.details == {"party_id": party_id, "prefix": response.json["api_key"][:10]}


def test_issuing_and_revoking_keys_are_audited_with_the_actor(client):
    operator = make_member(Role.OPERATOR)
    merchant = make_member(Role.MERCHANT)
    before = len(audit_trail())

    issued = issue_key(client, operator, merchant.id).json
    client.delete(f"{PARTIES}/{merchant.id}/api-keys/{issued['id']}", headers=merchant.headers)

    new_entries = audit_trail()[before:]
    assert [entry.action for entry in new_entries] == ["api_key.issued", "api_key.revoked"]
    issue_entry, revoke_entry = new_entries
    assert str(issue_entry.actor_id) == operator.id
    assert issue_entry.subject_id == issued["id"]
    assert issue_entry.details["party_id"] == merchant.id
    assert str(revoke_entry.actor_id) == merchant.id
    assert revoke_entry.subject_id == issued["id"]
    assert revoke_entry.details == {"party_id": merchant.id, "prefix": issued["prefix"]}
    seal_log()
    verify = client.get("/api/v1/audit/verify", headers=operator.headers).json
    assert verify["valid"] is True
    assert verify["entries"] == before + 2


def test_refused_requests_leave_no_audit_entries(client):
    buyer = make_member(Role.BUYER)
    other = make_member(Role.BUYER)
    before = len(audit_trail())

    client.post(PARTIES, json=PartyBodyFactory(credit_code="91350100M000100Y44"))
    client.post(PARTIES, json=PartyBodyFactory(roles=["operator"]))
    client.post(PARTIES, json=PartyBodyFactory(credit_code=buyer.party.credit_code))
    issue_key(client, other, buyer.id)

    assert len(audit_trail()) == before
