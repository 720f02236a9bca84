"""Request and response shapes of listings, certifications, quality reports and rules."""

from __future__ import annotations

import copy
from typing import Any

import marshmallow as ma
from flask import has_request_context
from marshmallow import fields, post_dump, validate, validates_schema

from app.api import ResponseSchema, Schema, StrictBoolean, StrictFloat
from app.log.schemas import EvidenceSchema
from app.parties.auth import authenticated_party
from listings import services
from listings.models import (
    MIN_UNIT_PRICE,
    AdmissionList,
    CertificationScope,
    Classification,
    DeliveryMode,
    ListingStatus,
    PriceModel,
    Rating,
    ShareBasis,
    ShareRole,
    SourceOrigin,
    Territory,
)

_name = validate.Length(min=1, max=200)
_short = validate.Length(min=1, max=64)


class _Enum(fields.Enum):
    """An enum field that also dumps plain values, as JSON columns (a certification's
    scopes, a revenue share's role and basis) hand them back."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is not None and not isinstance(value, self.enum):
            value = self.enum(value)
        return super()._serialize(value, attr, obj, **kwargs)


def _enum(enum_cls: type, **kwargs: Any) -> fields.Enum:
    return _Enum(enum_cls, by_value=True, **kwargs)


class AuthorizationSchema(Schema):
    authority_id = fields.UUID(required=True, metadata={
        "description": "The public agency that authorized the operation; asked to consent"})
    document_ref = fields.String(required=True, validate=validate.Length(min=1, max=200),
                                 metadata={"description": "The authorization agreement"})
    valid_until = fields.AwareDateTime(required=True, default_timezone=None)


class SourceSchema(Schema):
    origin = _enum(SourceOrigin, required=True)
    description = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    legal_basis = fields.String(required=True, validate=validate.Length(min=1, max=500))
    authorization = fields.Nested(AuthorizationSchema, load_default=None, allow_none=True,
                                  metadata={"description": "公共数据授权运营: required when "
                                                           "`origin` is `public_authorized`"})


class RightsSchema(Schema):
    holder_id = fields.UUID(required=True, metadata={"description": "数据资源持有权"})
    processor_ids = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=20),
                                metadata={"description": "数据加工使用权"})
    operator_id = fields.UUID(required=True,
                              metadata={"description": "数据产品经营权: must be the merchant"})


class UsageScopeSchema(Schema):
    purposes = fields.List(fields.String(validate=_short), required=True,
                           validate=validate.Length(min=1, max=20))
    term_days = fields.Integer(load_default=None, allow_none=True, strict=True,
                               validate=validate.Range(min=1, max=36500))
    territory = _enum(Territory, required=True)
    resale = StrictBoolean(load_default=False)
    derivatives = StrictBoolean(load_default=False)
    cross_border_assessment_ref = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=200),
        metadata={"description": "The outbound data security assessment (数据出境安全评估): "
                                 "required for personal information when `territory` is "
                                 "`cross_border`"})


class RevenueShareSchema(Schema):
    party_id = fields.UUID(required=True)
    role = _enum(ShareRole, required=True)
    basis = _enum(ShareBasis, required=True)
    weight = StrictFloat(required=True, validate=validate.Range(min=0, min_inclusive=False,
                                                                max=1_000_000))
    invested_amount = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))


class ListingBodySchema(Schema):
    """The merchant-owned fields of a listing (status, ids and dates are the server's)."""

    example = {
        "title": "上海道路交通流量 小时级 Shanghai hourly road traffic flows",
        "description": "每小时路段车流量、平均车速与拥堵指数,覆盖 1,200 个主干道路段。"
                       "Hourly vehicle counts, mean speed and congestion index on 1,200 "
                       "arterial road segments, 2019 to date.",
        "category": "transport", "tags": ["traffic", "交通", "hourly"],
        "classification": "general", "contains_personal_info": False, "anonymized": False,
        "consent_basis": None,
        "source": {"origin": "collected",
                   "description": "Roadside loop detectors and cameras we operate; counts "
                                  "only, no plates. 自营路侧线圈与卡口设备采集。",
                   "legal_basis": "道路交通监测设备运营许可 2024-17"},
        "rights": {"holder_id": "5b0e7a1c-3d2f-4a8e-9c61-2f4d8e7b1a30", "processor_ids": [],
                   "operator_id": "5b0e7a1c-3d2f-4a8e-9c61-2f4d8e7b1a30"},
        "usage_scope": {"purposes": ["research", "logistics_planning"], "term_days": 365,
                        "territory": "domestic", "resale": False, "derivatives": True},
        "delivery_mode": "api", "price_model": "subscription", "unit_price": 120_000,
        "currency": "CNY", "licenses_available": 50, "revenue_shares": [],
    }

    title = fields.String(required=True, validate=_name)
    description = fields.String(required=True, validate=validate.Length(min=1, max=10_000))
    category = fields.String(required=True, validate=_short)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=32)), load_default=list,
                       validate=validate.Length(max=20))
    classification = _enum(Classification, required=True)
    contains_personal_info = StrictBoolean(load_default=False)
    anonymized = StrictBoolean(load_default=False)
    consent_basis = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(max=500))
    source = fields.Nested(SourceSchema, required=True)
    rights = fields.Nested(RightsSchema, required=True)
    usage_scope = fields.Nested(UsageScopeSchema, required=True)
    delivery_mode = _enum(DeliveryMode, required=True)
    price_model = _enum(PriceModel, required=True)
    # strict: money and counts in JSON are integers; 12.5 or "12" is refused, not truncated.
    unit_price = fields.Integer(required=True, strict=True,
                                validate=validate.Range(min=MIN_UNIT_PRICE, max=10**13),
                                metadata={"description": "fen, at least 1"})
    currency = fields.String(load_default="CNY", validate=validate.OneOf(["CNY"]))
    licenses_available = fields.Integer(load_default=None, allow_none=True, strict=True,
                                        validate=validate.Range(min=1, max=10**9),
                                        metadata={"description": "null: unlimited"})
    revenue_shares = fields.List(fields.Nested(RevenueShareSchema), load_default=list,
                                 validate=validate.Length(max=50))


def _optional_copy(schema_cls: type[Schema], name: str) -> type[Schema]:
    """The same top-level fields, none required and none defaulted (a PATCH changes only
    what it names); nested objects are replaced whole, so they stay complete."""
    optional = {}
    for field_name, field_obj in schema_cls._declared_fields.items():
        clone = copy.deepcopy(field_obj)
        clone.required = False
        clone.load_default = ma.missing
        optional[field_name] = clone
    return type(name, (Schema,), optional)


ListingPatchFieldsSchema = _optional_copy(ListingBodySchema, "ListingPatchFieldsSchema")


# Its base is built at run time, which a static type checker cannot follow.
class ListingPatchSchema(ListingPatchFieldsSchema):  # type: ignore[valid-type,misc]
    example = {"unit_price": 98_000, "licenses_available": 80, "version": 2,
               "tags": ["traffic", "交通", "hourly", "congestion"]}

    version = fields.Integer(load_only=True, strict=True, metadata={
        "description": "The version you edited (or send If-Match); a stale one → 409"})


class CertificationCreateSchema(Schema):
    example = {"rating": "AA", "scopes": ["compliance", "quality"],
               "valid_until": "2028-12-31T23:59:59+08:00",
               "report_ref": "数据产品质量评估报告 SHDEC-CERT-2026-0387"}

    rating = _enum(Rating, required=True)
    scopes = fields.List(_enum(CertificationScope), required=True,
                         validate=validate.Length(min=1, max=3))
    valid_until = fields.AwareDateTime(required=True, default_timezone=None)
    report_ref = fields.String(required=True, validate=validate.Length(min=1, max=200))


class CertificationSchema(CertificationCreateSchema, ResponseSchema):
    id = fields.UUID(dump_only=True)
    certifier_id = fields.UUID(dump_only=True)
    issued_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True, allow_none=True)
    revocation_reason = fields.String(dump_only=True, allow_none=True)


class QualitySummarySchema(ResponseSchema):
    count = fields.Integer()
    average = fields.Float(allow_none=True)


class MatchedRuleSchema(ResponseSchema):
    rule_id = fields.String()
    rule_key = fields.String(allow_none=True)
    version = fields.Integer()
    list = fields.String()
    name = fields.String()
    reason = fields.String()
    builtin = fields.Boolean()
    matched_on = fields.List(fields.String())


class AdmissionResultSchema(ResponseSchema):
    decision = fields.String()
    explanation = fields.String()
    matched_rules = fields.List(fields.Nested(MatchedRuleSchema))


class ListingSchema(ListingBodySchema, ResponseSchema):
    # A sold-out product answers 0; a merchant offers at least 1 (ListingBodySchema).
    licenses_available = fields.Integer(allow_none=True, validate=validate.Range(min=0),
                                        metadata={"description": "null: unlimited"})
    id = fields.UUID(dump_only=True)
    merchant_id = fields.UUID(dump_only=True)
    status = _enum(ListingStatus, dump_only=True)
    status_reason = fields.String(dump_only=True, allow_none=True)
    admission = fields.Nested(AdmissionResultSchema, dump_only=True, allow_none=True)
    review_flag = fields.String(dump_only=True, allow_none=True, metadata={
        "description": "Why the evaluation flagged it for review; null for others than its "
                       "merchant, operators and regulators"})
    quality = fields.Nested(QualitySummarySchema, dump_only=True)
    price_warning = fields.String(dump_only=True, allow_none=True, metadata={
        "description": "Set at submission when the price is outside a non-binding guide band"})
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    listed_at = fields.DateTime(dump_only=True, allow_none=True)

    @post_dump(pass_original=True)
    def _hide_review_flag(self, data: dict[str, Any], listing: Any,
                          **kwargs: object) -> dict[str, Any]:
        # Whoever a listing is shown to, by whichever endpoint: the rule is the service's.
        viewer = authenticated_party() if has_request_context() else None
        if not services.may_see_review_flag(listing, viewer):
            data["review_flag"] = None
        return data


class ListingDetailSchema(ListingSchema):
    certifications = fields.List(fields.Nested(CertificationSchema), dump_only=True,
                                 attribute="valid_certifications",
                                 metadata={"description": "Certifications still valid"})


class ListingQueryArgsSchema(Schema):
    category = fields.String(validate=_short)
    q = fields.String(validate=validate.Length(min=1, max=100),
                      metadata={"description": "Words in the title or description"})
    classification = _enum(Classification)
    status = _enum(ListingStatus)
    merchant_id = fields.UUID()
    min_price = fields.Integer(validate=validate.Range(min=0, max=10**13))
    max_price = fields.Integer(validate=validate.Range(min=0, max=10**13))
    flagged = fields.Boolean(metadata={
        "description": "Only listings flagged for review (true) or not (false); for others "
                       "than operators and regulators, among their own listings"})

    @validates_schema
    def _price_range(self, data: dict, **kwargs: object) -> None:
        if data.get("min_price", 0) > data.get("max_price", float("inf")):
            raise ma.ValidationError("min_price is above max_price.", "min_price")


class ReasonSchema(Schema):
    example = {"reason": "经复核决定 Decided after review of case DX-2026-0142."}

    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ReviewSchema(ReasonSchema):
    example = {"decision": "approve",
               "reason": "来源与授权材料齐全 Source and licence documents verified."}

    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))


class QualityReportCreateSchema(Schema):
    example = {"score": 4, "issue": "6 月约 3% 路段缺测 About 3% of segments lack June data."}

    # strict: a score of 2.5 is refused, not silently truncated to 2.
    score = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=5))
    issue = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class QualityReportSchema(QualityReportCreateSchema, ResponseSchema):
    id = fields.UUID(dump_only=True)
    listing_id = fields.UUID(dump_only=True)
    buyer_id = fields.UUID(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class AdmissionRuleCreateSchema(Schema):
    example = {"list": "negative", "name": "人脸识别与生物特征 Face recognition and biometrics",
               "reason": "Biometric data may not be traded on the exchange (个人信息保护法 "
                         "第二十八条 敏感个人信息).",
               "keywords": ["人脸", "指纹", "face recognition", "fingerprint"],
               "categories": [], "classifications": [], "contains_personal_info": None,
               "territory": None}

    admission_list = _enum(AdmissionList, required=True, data_key="list")
    name = fields.String(required=True, validate=_name)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    categories = fields.List(fields.String(validate=_short), load_default=list,
                             validate=validate.Length(max=50))
    keywords = fields.List(fields.String(validate=_short), load_default=list,
                           validate=validate.Length(max=50))
    classifications = fields.List(_enum(Classification), load_default=list)
    contains_personal_info = StrictBoolean(load_default=None, allow_none=True)
    territory = _enum(Territory, load_default=None, allow_none=True)
    effective_from = fields.AwareDateTime(load_default=None, default_timezone=None)
    effective_to = fields.AwareDateTime(load_default=None, allow_none=True,
                                        default_timezone=None)
    supersedes = fields.UUID(load_only=True, load_default=None, metadata={
        "description": "Id of the rule this one replaces: it is retired, this is version + 1"})


class AdmissionRuleSchema(AdmissionRuleCreateSchema, ResponseSchema):
    id = fields.UUID(dump_only=True)
    rule_key = fields.UUID(dump_only=True)
    version = fields.Integer(dump_only=True)
    retired_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class AdmissionRuleQueryArgsSchema(Schema):
    admission_list = _enum(AdmissionList, data_key="list")
    include_retired = fields.Boolean(load_default=False)


class TraceEntrySchema(ResponseSchema):
    id = fields.Integer(metadata={"description": "the audit entry's id"})
    occurred_at = fields.DateTime()
    actor_id = fields.UUID(allow_none=True)
    action = fields.String()
    # What changed: the listing itself, or an order, refund or payout of it.
    subject_type = fields.String()
    subject_id = fields.String()
    details = fields.Dict()
    payload_digest = fields.String(metadata={"description": "SHA-256 (hex) of the canonical "
                                                            "JSON of details"})
    # The entry's place in the evidence log and its leaf hash: null until it is sealed.
    log_index = fields.Integer(allow_none=True)
    leaf_hash = fields.String(allow_none=True, metadata={
        "description": "SHA-256 (hex) of 0x00 and the entry's leaf bytes (RFC 9162)"})


class CertificateSchema(ResponseSchema):
    """The registration certificate (数据产品登记证书) of a listed product."""

    certificate_no = fields.String(metadata={"example": "RC-1041",
                                             "description": "RC- and the log index"})
    kind = fields.String(validate=validate.OneOf(["registration_certificate"]))
    facts = fields.Dict(metadata={"description": "listing id, title, category, classification, "
                                                 "source, the three rights holders (id, name, "
                                                 "credit code), usage scope, delivery mode, "
                                                 "valid certifications, listed time"})
    evidence = fields.Nested(EvidenceSchema)
