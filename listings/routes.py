"""HTTP routes of listings, certifications and the admission lists."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import request
from flask.views import MethodView

from app.api import PDF_CONTENT, PDF_MIMETYPE, Blueprint, SQLPage, negotiate, pdf_response
from app.db import unit_of_work
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from listings import certificates, certification, rules, services
from listings.errors import MalformedIfMatch
from listings.models import Listing
from listings.schemas import (
    AdmissionResultSchema,
    AdmissionRuleCreateSchema,
    AdmissionRuleQueryArgsSchema,
    AdmissionRuleSchema,
    CertificateSchema,
    CertificationCreateSchema,
    CertificationSchema,
    ListingBodySchema,
    ListingDetailSchema,
    ListingPatchSchema,
    ListingQueryArgsSchema,
    ListingSchema,
    ReasonSchema,
    ReviewSchema,
    TraceEntrySchema,
)

blp = Blueprint("listings", __name__, url_prefix="/api/v1/listings",
                description="Data products (数据产品挂牌): lifecycle, certification, trace")
rules_blp = Blueprint("admission", __name__, url_prefix="/api/v1",
                      description="Admission lists (正面引导清单 / 负面禁止清单)")

_ETAG = re.compile(r'^(?:W/)?"(\d+)"$')
# Each answer with a listing carries its version as an ETag, sent back as If-Match to edit.
ETAG_HEADER = {"ETag": {"description": "The listing's version, for If-Match", "required": True,
                        "schema": {"type": "string", "pattern": r'^"\d+"$'}}}
IF_MATCH = {"in": "header", "name": "If-Match", "required": False,
            "description": "The ETag of the version you edited: a stale one → 412, so no "
                           "edit is lost (or send `version` in the body)",
            "schema": {"type": "string", "pattern": r'^(W/)?"\d+"$'}}


def _if_match() -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _ETAG.match(header.strip())
    if match is None:
        raise MalformedIfMatch()
    return int(match.group(1))


def _with_etag(listing: Listing, status: int = 200) -> tuple[Listing, int, dict[str, str]]:
    return listing, status, {"ETag": f'"{listing.version}"'}


@blp.route("", operation_ids={"post": "createListing", "get": "searchListings"})
class Listings(MethodView):
    @require_role(Role.MERCHANT)
    @blp.arguments(ListingBodySchema)
    @blp.response(201, ListingSchema, headers=ETAG_HEADER)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any]) -> Any:
        """Create a draft listing (the merchant must hold the product-operation right)."""
        with unit_of_work() as session:
            listing = services.create_listing(session, merchant=current_party(), body=body)
        return _with_etag(listing, 201)

    @require_role()
    @blp.arguments(ListingQueryArgsSchema, location="query")
    @blp.response(200, ListingSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, filters: dict[str, Any]) -> Any:
        """Search listings; non-owners see listed products only."""
        return services.search_listings(viewer=current_party(), filters=filters)


@blp.route("/<uuid:listing_id>", operation_ids={"get": "getListing", "patch": "updateListing"})
class ListingDetail(MethodView):
    @require_role()
    @blp.response(200, ListingDetailSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, listing_id: uuid.UUID) -> Any:
        """A listing with its valid certifications (drafts only for owner and overseers)."""
        with unit_of_work() as session:
            listing = services.get_listing(session, listing_id=listing_id, viewer=current_party())
        return _with_etag(listing)

    @blp.doc(parameters=[IF_MATCH])
    @require_role()
    @blp.arguments(ListingPatchSchema, required=False)
    @blp.response(200, ListingSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    def patch(self, changes: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Edit a draft or rejected listing (If-Match or `version` guard against lost edits)."""
        with unit_of_work() as session:
            listing = services.update_listing(session, listing_id=listing_id,
                                              actor=current_party(), changes=changes,
                                              if_match=_if_match())
        return _with_etag(listing)


@blp.route("/<uuid:listing_id>/submit", operation_ids={"post": "submitListing"})
class SubmitListing(MethodView):
    @require_role(Role.MERCHANT)
    @blp.response(200, ListingSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, listing_id: uuid.UUID) -> Any:
        """Submit for admission: rejected (422 admission_prohibited), listed or pending review.

        Sensitive and important data needs the merchant's qualification (422
        `not_qualified`); public data its authorization and the authority's share (422
        `authorization_required`, `authority_not_public_agency`, `authorization_expired`,
        `public_authority_share_required`). Then every party the listing names besides its
        merchant is asked to consent: until all accept, the listing stays a draft and this
        answers 409 `consent_pending` (the first time too, having asked them); a decline
        answers 422 `consent_declined` with the party's note.
        """
        with unit_of_work() as session:
            listing = services.submit_listing(session, listing_id=listing_id,
                                              actor=current_party())
        return _with_etag(listing)


@blp.route("/<uuid:listing_id>/review", operation_ids={"post": "reviewListing"})
class ReviewListing(MethodView):
    @require_role(Role.OPERATOR)
    @blp.arguments(ReviewSchema)
    @blp.response(200, ListingSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Approve or reject a pending listing, with a reason."""
        with unit_of_work() as session:
            listing = services.review_listing(session, listing_id=listing_id,
                                              actor=current_party(), **body)
        return _with_etag(listing)


def _lifecycle_route(path: str, step: str, roles: tuple[Role, ...], summary: str) -> None:
    operation = getattr(services, f"{step}_listing")

    @blp.route(f"/<uuid:listing_id>/{path}", endpoint=f"{step}_listing",
               operation_ids={"post": f"{step}Listing"})
    class LifecycleStep(MethodView):
        @blp.doc(summary=summary)
        @require_role(*roles)
        @blp.arguments(ReasonSchema)
        @blp.response(200, ListingSchema, headers=ETAG_HEADER)
        @blp.alt_response(404, response="NOT_FOUND")
        @blp.alt_response(409, response="CONFLICT")
        @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
        def post(self, body: dict[str, Any], listing_id: uuid.UUID) -> Any:
            with unit_of_work() as session:
                listing = operation(session, listing_id=listing_id, actor=current_party(),
                                    reason=body["reason"])
            return _with_etag(listing)

    LifecycleStep.post.__doc__ = summary


_lifecycle_route("suspend", "suspend", (Role.OPERATOR,), "Suspend a listed product (operator).")
_lifecycle_route("relist", "relist", (Role.OPERATOR,),
                 "Put a suspended product back on the market (operator); a delisted one stays "
                 "delisted.")
_lifecycle_route("delist", "delist", (Role.MERCHANT, Role.OPERATOR),
                 "Withdraw a product (its merchant or an operator).")


@blp.route("/<uuid:listing_id>/certifications", operation_ids={"post": "certifyListing"})
class Certifications(MethodView):
    @require_role(Role.CERTIFIER)
    @blp.arguments(CertificationCreateSchema)
    @blp.response(201, CertificationSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, body: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Certify a listing: rating, scopes, expiry and report reference (certifiers).

        Not one's own listing (403 `own_listing`); only within the certifier's accreditations,
        each scope at the listing's classification (403 `not_accredited`, with the
        `uncovered_scopes`). The first certification rated A or better of a listing pending
        review or listed earns its merchant a `certification_obtained` credit event; later
        ones do not.
        """
        with unit_of_work() as session:
            return certification.certify_listing(session, listing_id=listing_id,
                                                 certifier=current_party(), body=body)


@blp.route("/<uuid:listing_id>/clear-flag", operation_ids={"post": "clearListingFlag"})
class ClearFlag(MethodView):
    @require_role(Role.OPERATOR)
    @blp.arguments(ReasonSchema)
    @blp.response(200, ListingSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Clear a listing's quality flag after review, with a reason (operator).

        The evaluation job flags a listed product whose buyers' reports average below 2.5
        (`review_flag`, shown to its merchant, operators and regulators only). Clearing it
        records the operator's decision in the trace (`listing.flag_cleared`, with the flag
        and the reason); the job flags the listing again only if reports arriving after the
        clearance still leave it rated poorly. A listing without a flag → 409 `not_flagged`.
        """
        with unit_of_work() as session:
            listing = certification.clear_review_flag(session, listing_id=listing_id,
                                                      actor=current_party(),
                                                      reason=body["reason"])
        return _with_etag(listing)


@blp.route("/<uuid:listing_id>/trace", operation_ids={"get": "getListingTrace"})
class Trace(MethodView):
    @require_role()
    @blp.response(200, TraceEntrySchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, listing_id: uuid.UUID) -> Any:
        """The product's audited history in order, each entry with actor, time and digest."""
        with unit_of_work() as session:
            return services.listing_trace(session, listing_id=listing_id,
                                          viewer=current_party())


@blp.route("/<uuid:listing_id>/certificate", operation_ids={"get": "getListingCertificate"})
class Certificate(MethodView):
    @require_role()
    @blp.response(200, CertificateSchema, description="JSON, or a printable PDF with Accept: "
                                                      "application/pdf")
    @blp.doc(responses={200: PDF_CONTENT})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(406, response="NOT_ACCEPTABLE")
    @blp.alt_response(409, response="CONFLICT")
    def get(self, listing_id: uuid.UUID) -> Any:
        """The registration certificate of a listed product, with the log's proof of its facts."""
        media = negotiate("application/json", PDF_MIMETYPE)
        document = certificates.certificate(listing_id=listing_id, viewer=current_party())
        if media == PDF_MIMETYPE:
            return pdf_response(certificates.certificate_pdf(document),
                                document["certificate_no"])
        return document


@rules_blp.route("/admission-rules",
                 operation_ids={"post": "createAdmissionRule", "get": "listAdmissionRules"})
class AdmissionRules(MethodView):
    @require_role(Role.OPERATOR)
    @rules_blp.arguments(AdmissionRuleCreateSchema)
    @rules_blp.response(201, AdmissionRuleSchema)
    @rules_blp.alt_response(404, response="NOT_FOUND")
    @rules_blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any]) -> Any:
        """Add a positive or negative rule, or a new version of one (`supersedes`)."""
        with unit_of_work() as session:
            return rules.create_rule(session, actor=current_party(), body=body)

    @require_role()
    @rules_blp.arguments(AdmissionRuleQueryArgsSchema, location="query")
    @rules_blp.response(200, AdmissionRuleSchema(many=True))
    @rules_blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Current rules (`include_retired=true` for the history); `?list=`."""
        return rules.rules_query(**args)


@rules_blp.route("/admission-rules/<uuid:rule_id>", operation_ids={"delete": "retireAdmissionRule"})
class AdmissionRuleDetail(MethodView):
    @require_role(Role.OPERATOR)
    @rules_blp.response(204)
    @rules_blp.alt_response(404, response="NOT_FOUND")
    def delete(self, rule_id: uuid.UUID) -> None:
        """Retire a rule: it stops applying and stays in the history."""
        with unit_of_work() as session:
            rules.retire_rule(session, rule_id=rule_id, actor=current_party())


@rules_blp.route("/admission/check", operation_ids={"post": "checkAdmission"})
class AdmissionCheck(MethodView):
    @require_role(Role.MERCHANT)
    @rules_blp.arguments(ListingBodySchema)
    @rules_blp.response(200, AdmissionResultSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Dry run: what admission would decide for this listing body now."""
        with unit_of_work() as session:
            return rules.check_admission(session, body=body).as_record()
