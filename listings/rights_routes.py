"""HTTP routes of consents (三权确认), merchants' qualifications, certifiers' accreditations and
the revocation of certifications."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from listings import certification, consents, qualifications, services
from listings.rights_schemas import (
    AccreditationCreateSchema,
    AccreditationSchema,
    ConsentDecisionSchema,
    ConsentQueryArgsSchema,
    ConsentSchema,
    QualificationCreateSchema,
    QualificationSchema,
)
from listings.schemas import CertificationSchema, ReasonSchema

blp = Blueprint("rights", __name__, url_prefix="/api/v1",
                description="Rights confirmed by their holders (三权确认): consents; who may "
                            "list and certify what: qualifications and accreditations")


@blp.route("/consents", operation_ids={"get": "listConsents"})
class Consents(MethodView):
    @require_role()
    @blp.arguments(ConsentQueryArgsSchema, location="query")
    @blp.response(200, ConsentSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """The consents asked of me, newest first; `?status=`."""
        return consents.consents_asked_of(party=current_party(), status=args.get("status"))


@blp.route("/consents/<uuid:consent_id>/decide", operation_ids={"post": "decideConsent"})
class DecideConsent(MethodView):
    @require_role()
    @blp.arguments(ConsentDecisionSchema)
    @blp.response(200, ConsentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], consent_id: uuid.UUID) -> Any:
        """Accept or decline being named on a listing (the party asked; once: 409 after).

        A listing cannot pass its submission until every party it names accepts; a decline
        blocks it, with the note as the reason, until the merchant changes what it names.
        """
        with unit_of_work() as session:
            return consents.decide_consent(session, consent_id=consent_id,
                                           party=current_party(),
                                           accept=body["decision"] == "accept",
                                           note=body["note"])


@blp.route("/listings/<uuid:listing_id>/consents", tags=["listings"],
           operation_ids={"get": "listListingConsents"})
class ListingConsents(MethodView):
    @require_role()
    @blp.arguments(ConsentQueryArgsSchema, location="query")
    @blp.response(200, ConsentSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Every consent a listing asked for, superseded ones included; `?status=`.

        For the listing's merchant, operators and regulators (others: 404).
        """
        with unit_of_work() as session:
            services.ensure_may_trace(session, listing_id=listing_id, viewer=current_party())
        return consents.consents_of_listing(listing_id=listing_id, status=args.get("status"))


@blp.route("/parties/<uuid:party_id>/qualifications",
           operation_ids={"post": "grantQualification", "get": "listQualifications"})
class Qualifications(MethodView):
    @require_role(Role.OPERATOR)
    @blp.arguments(QualificationCreateSchema)
    @blp.response(201, QualificationSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any], party_id: uuid.UUID) -> Any:
        """Qualify a merchant to list data up to a classification, until a date (operator).

        数据产品开发利用资格: sensitive and important data is submitted only by a merchant whose
        qualification valid at submission covers its classification (else 422
        `not_qualified`). The party must hold the merchant role (422 `role_required`).
        """
        with unit_of_work() as session:
            return qualifications.grant_qualification(session, party_id=party_id,
                                                      actor=current_party(), body=body)

    @require_role()
    @blp.response(200, QualificationSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLPage)
    def get(self, party_id: uuid.UUID) -> Any:
        """A party's qualifications, newest first (the party, operators and regulators)."""
        with unit_of_work() as session:
            return qualifications.qualifications_of(session, party_id=party_id,
                                                    viewer=current_party())


@blp.route("/certifiers/<uuid:party_id>/accreditations",
           operation_ids={"post": "grantAccreditation", "get": "listAccreditations"})
class Accreditations(MethodView):
    @require_role(Role.OPERATOR)
    @blp.arguments(AccreditationCreateSchema)
    @blp.response(201, AccreditationSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any], party_id: uuid.UUID) -> Any:
        """Accredit a certifier for scopes up to a classification, until a date (operator).

        A certification is issued only by a body whose accreditations valid now cover each
        of its scopes at the listing's classification (else 403 `not_accredited`). The party
        must hold the certifier role (422 `role_required`).
        """
        with unit_of_work() as session:
            return qualifications.grant_accreditation(session, party_id=party_id,
                                                      actor=current_party(), body=body)

    @require_role()
    @blp.response(200, AccreditationSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLPage)
    def get(self, party_id: uuid.UUID) -> Any:
        """A certification body's accreditations, newest first (any party)."""
        with unit_of_work() as session:
            return qualifications.accreditations_of(session, party_id=party_id)


@blp.route("/certifications/<uuid:certification_id>/revoke", tags=["listings"],
           operation_ids={"post": "revokeCertification"})
class RevokeCertification(MethodView):
    @require_role(Role.CERTIFIER, Role.OPERATOR)
    @blp.arguments(ReasonSchema)
    @blp.response(200, CertificationSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], certification_id: uuid.UUID) -> Any:
        """Revoke a certification (its certifier or an operator), with a reason.

        A listed product that relied on it — sensitive or important data left without any
        other valid compliance certification rated A or better — is suspended at once, the
        reason naming the certification. Revoking twice → 409 `invalid_transition`; another
        body's certification → 404.
        """
        with unit_of_work() as session:
            return certification.revoke_certification(
                session, certification_id=certification_id, actor=current_party(),
                reason=body["reason"])
