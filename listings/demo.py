# The Chinese texts use full-width commas, colons and brackets, which RUF001 calls look-alikes.
# ruff: noqa: RUF001
"""The demo catalog `flask seed-demo` grows: admission rules on both lists, the merchants'
qualifications and the certifier's accreditation, and data products.

Everything goes through the real use cases (rules.create_rule, the operator's grants in
listings.qualifications, services.create_listing, consents.decide_consent as the parties a
product names, services.submit_listing, certification.certify_listing,
services.review_listing), so each demo product is admitted exactly as a merchant's would be,
and audited. Seeding is idempotent: a rule is keyed on its list and name, a listing on its
merchant and title, a grant on its party; what exists is left alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import clock
from app.errors import DomainError
from app.parties.models import Party
from listings import certification, consents, qualifications, rules, services
from listings.models import AdmissionRule, Listing, ListingStatus
from listings.rights_models import Accreditation, Qualification
from listings.rights_schemas import AccreditationCreateSchema, QualificationCreateSchema
from listings.schemas import AdmissionRuleSchema, CertificationSchema, ListingBodySchema


@dataclass(frozen=True)
class DemoCast:
    """The demo parties the catalog needs."""

    operator: Party
    certifier: Party
    traffic: Party  # Demo Traffic Data Co.: transport
    geo: Party  # Demo Geo Analytics Co.: weather, agriculture, energy, credit
    transport_bureau: Party  # holds the public bus data it authorizes the traffic company to sell


@dataclass(frozen=True)
class CatalogSummary:
    listings_by_status: dict[str, int]
    rules_by_list: dict[str, int]
    created_listings: int
    created_rules: int
    skipped: list[str]

    def line(self) -> str:
        statuses = ", ".join(f"{n} {status}" for status, n in self.listings_by_status.items())
        lists = ", ".join(f"{n} {name}" for name, n in self.rules_by_list.items())
        skipped = f" (refused: {'; '.join(self.skipped)})" if self.skipped else ""
        return (f"catalog: {sum(self.listings_by_status.values())} demo listings ({statuses}); "
                f"{sum(self.rules_by_list.values())} admission rules ({lists}); "
                f"created now: {self.created_listings} listings, {self.created_rules} rules"
                f"{skipped}")


ENCOURAGED_SECTORS = ["transport", "weather", "agriculture", "energy"]

RULES: list[dict[str, Any]] = [
    {"list": "positive", "name": "公共数据开放：交通、气象、农业、能源 (open sector data)",
     "reason": "Open and general data of the encouraged sectors is listed on the fast track "
               "(公共数据授权运营，鼓励交通、气象、农业、能源数据流通).",
     "categories": ENCOURAGED_SECTORS, "classifications": ["open", "general"]},
    {"list": "positive", "name": "双碳与新能源 (carbon and new energy)",
     "reason": "Products serving carbon accounting and renewable energy are encouraged.",
     "keywords": ["碳排放", "新能源", "光伏", "carbon", "renewable", "solar"],
     "classifications": ["open", "general"]},
    {"list": "negative", "name": "人脸识别与生物特征 (face recognition, biometrics)",
     "reason": "Biometric data (faces, fingerprints, voiceprints) may not be traded on the "
               "exchange (个人信息保护法 第二十八条：敏感个人信息).",
     "keywords": ["人脸", "生物特征", "指纹", "声纹", "face recognition", "facial", "biometric",
                  "biometrics", "fingerprint"]},
    {"list": "negative", "name": "基因数据 (genetic data)",
     "reason": "Human genetic resources data is not traded (人类遗传资源管理条例).",
     "categories": ["genetic", "genomics"]},
    {"list": "negative", "name": "个人信息出境 (cross-border personal information)",
     "reason": "Personal information leaves the country only after a security assessment, "
               "never through an exchange listing (数据出境安全评估办法).",
     "contains_personal_info": True, "territory": "cross_border"},
]


def _listing(merchant: Party, *, title: str, description: str, category: str,
             tags: list[str], classification: str, origin: str, source: str, legal_basis: str,
             purposes: list[str], delivery_mode: str, price_model: str, unit_price: int,
             holder: Party | None = None, term_days: int | None = 365,
             licenses: int | None = None, authorization: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
    """A listing body as a merchant would post it (JSON shapes, checked by the schema)."""
    return {
        "title": title, "description": description, "category": category, "tags": tags,
        "classification": classification,
        "source": {"origin": origin, "description": source, "legal_basis": legal_basis,
                   "authorization": authorization},
        "rights": {"holder_id": str((holder or merchant).id), "processor_ids": [],
                   "operator_id": str(merchant.id)},
        "usage_scope": {"purposes": purposes, "term_days": term_days, "territory": "domestic",
                        "resale": False, "derivatives": True},
        "delivery_mode": delivery_mode, "price_model": price_model, "unit_price": unit_price,
        "currency": "CNY", "licenses_available": licenses, **extra,
    }


# What happens after submission: nothing more (fast track or left for review), or certified
# by the demo certifier and then approved by the demo operator.
CERTIFY_AND_APPROVE = "certify_and_approve"


def _catalog(cast: DemoCast) -> list[tuple[Party, dict[str, Any], str | None]]:
    traffic, geo, bureau = cast.traffic, cast.geo, cast.transport_bureau
    return [
        (traffic, _listing(
            traffic, title="上海道路交通流量（小时级） Shanghai hourly road traffic flows",
            description="每小时路段车流量、平均车速与拥堵指数，覆盖 1,200 个主干道路段。Hourly "
                        "vehicle counts, mean speed and congestion index on 1,200 arterial "
                        "road segments, 2019 to date.",
            category="transport", tags=["traffic", "交通", "hourly"], classification="general",
            origin="collected", source="Roadside loop detectors and cameras we operate; counts "
                                       "only, no plates.",
            legal_basis="道路交通监测设备运营许可 2024-17", purposes=["research",
                                                                    "logistics_planning"],
            delivery_mode="api", price_model="subscription", unit_price=120_000), None),
        (traffic, _listing(
            traffic, title="公交线路客流统计 Bus route ridership statistics",
            description="按线路、站点、时段汇总的公交刷卡客流，已聚合至 15 分钟粒度。Boardings "
                        "and alightings per route, stop and 15-minute slot, aggregated.",
            category="transport", tags=["bus", "公交", "ridership"], classification="open",
            origin="public_authorized", holder=bureau,
            source="Fare-card taps aggregated by the City Transport Bureau (公共数据授权运营).",
            legal_basis="公共数据授权运营协议 SH-PD-2025-031",
            authorization={"authority_id": str(bureau.id),
                           "document_ref": "公共数据授权运营协议 SH-PD-2025-031",
                           "valid_until": (clock.now() + timedelta(days=3 * 365)).isoformat()},
            purposes=["research", "urban_planning"], delivery_mode="download",
            price_model="one_time", unit_price=20_000,
            revenue_shares=[
                {"party_id": str(bureau.id), "role": "public_authority",
                 "basis": "contribution", "weight": 30},
                {"party_id": str(traffic.id), "role": "processor", "basis": "investment",
                 "weight": 70, "invested_amount": 5_000_000}]), None),
        (traffic, _listing(
            traffic, title="城市停车场实时空位 Real-time parking availability",
            description="全市 3,400 个公共停车场的实时空余泊位，每分钟更新。Free spaces in 3,400 "
                        "public car parks, refreshed every minute.",
            category="transport", tags=["parking", "停车", "real-time"], classification="open",
            origin="collected", source="Car park barrier counters under data-sharing contracts.",
            legal_basis="停车场数据共享合同 2025 版", purposes=["navigation", "research"],
            delivery_mode="api", price_model="per_call", unit_price=5), None),
        (traffic, _listing(
            traffic, title="港区集卡轨迹（脱敏） Port container-truck trajectories, de-identified",
            description="洋山港区集卡 GPS 轨迹，车牌与司机信息已去标识化，仅可在沙箱内使用。GPS "
                        "tracks of container trucks serving Yangshan port; plates and drivers "
                        "de-identified; usable in the sandbox only.",
            category="transport", tags=["port", "港口", "trajectory", "logistics"],
            classification="sensitive", contains_personal_info=True, anonymized=True,
            origin="collected", source="Fleet telematics we collect under carrier contracts.",
            legal_basis="运输企业数据委托处理协议 + 去标识化评估报告 DI-2025-08",
            purposes=["logistics_planning", "port_operations"], delivery_mode="sandbox",
            price_model="subscription", unit_price=480_000, licenses=20), CERTIFY_AND_APPROVE),
        (traffic, _listing(
            traffic, title="网约车出行 OD 矩阵 Ride-hailing origin-destination matrix",
            description="按交通小区统计的网约车出行起讫点矩阵，个人行程已匿名化聚合。Trips between "
                        "traffic analysis zones by hour, aggregated from anonymized rides.",
            category="transport", tags=["OD", "出行", "mobility"], classification="sensitive",
            contains_personal_info=True, anonymized=True, origin="purchased",
            source="Bought from a ride-hailing platform under a resale-free licence.",
            legal_basis="数据采购合同 RH-2025-112", purposes=["urban_planning"],
            delivery_mode="sandbox", price_model="one_time", unit_price=360_000), None),
        (traffic, _listing(
            traffic, title="物流企业信用摘要 Logistics enterprise credit summaries",
            description="货运物流企业的行政处罚、运输违章与履约记录摘要。Administrative penalties, "
                        "transport violations and contract performance of freight carriers.",
            category="credit", tags=["credit", "信用", "logistics"], classification="general",
            origin="derived", source="Derived from public penalty notices and our fleet data.",
            legal_basis="企业信息公示暂行条例 (public notices)", purposes=["risk_control"],
            delivery_mode="api", price_model="per_call", unit_price=200), None),
        (geo, _listing(
            geo, title="逐小时气象观测（华东） East China hourly weather observations",
            description="华东 2,100 个自动气象站的逐小时气温、降水、风速与能见度。Hourly "
                        "temperature, precipitation, wind and visibility from 2,100 automatic "
                        "weather stations.",
            category="weather", tags=["weather", "气象", "hourly"], classification="open",
            origin="collected", source="Automatic weather stations we operate under the "
                                       "provincial meteorological service's data-sharing "
                                       "agreement.",
            legal_basis="气象资料共享协议 QX-2025-006", purposes=["research", "insurance"],
            delivery_mode="download", price_model="subscription", unit_price=60_000), None),
        (geo, _listing(
            geo, title="县域农作物产量估算 Crop yield estimates by county",
            description="基于遥感影像与气象数据估算的水稻、小麦、玉米县级产量。Rice, wheat and "
                        "maize yield estimates per county from satellite imagery and weather.",
            category="agriculture", tags=["crops", "农业", "remote-sensing"],
            classification="general", origin="derived",
            source="Our models over Sentinel-2 imagery and station weather.",
            legal_basis="Sentinel data licence; own model outputs", purposes=["insurance",
                                                                             "research"],
            delivery_mode="download", price_model="one_time", unit_price=150_000), None),
        (geo, _listing(
            geo, title="土壤墒情与灌溉数据 Soil moisture and irrigation data",
            description="农田土壤墒情传感器日均值与灌溉记录。Daily soil moisture readings and "
                        "irrigation logs from 800 field sensors.",
            category="agriculture", tags=["soil", "墒情", "irrigation"], classification="open",
            origin="collected", source="Field sensors installed with farming cooperatives.",
            legal_basis="合作社数据采集协议 2025", purposes=["agronomy", "research"],
            delivery_mode="api", price_model="subscription", unit_price=30_000), None),
        (geo, _listing(
            geo, title="工业园区用电负荷曲线 Industrial park electricity load curves",
            description="15 分钟粒度的园区用电负荷与碳排放估算，用于需求响应。15-minute load "
                        "curves of 40 industrial parks with carbon emission estimates.",
            category="energy", tags=["electricity", "用电", "carbon"], classification="general",
            origin="purchased", source="Licensed from the grid company's data service.",
            legal_basis="电网数据产品许可 SGCC-DS-2025-77", purposes=["demand_response",
                                                                       "carbon_accounting"],
            delivery_mode="api", price_model="subscription", unit_price=250_000), None),
        (geo, _listing(
            geo, title="分布式光伏发电出力 Distributed solar generation output",
            description="屋顶分布式光伏逐小时发电量与辐照度。Hourly output and irradiance of "
                        "12,000 rooftop solar installations.",
            category="energy", tags=["solar", "光伏", "新能源"], classification="open",
            origin="collected", source="Inverter telemetry from installations we maintain.",
            legal_basis="运维服务合同数据条款", purposes=["forecasting", "research"],
            delivery_mode="download", price_model="one_time", unit_price=80_000), None),
        (geo, _listing(
            geo, title="中小企业信用评估摘要 SME credit assessment summaries",
            description="中小企业工商、司法、纳税信用等级与经营异常的评估摘要。Registration, "
                        "court, tax-credit grade and abnormal-operation summaries of SMEs.",
            category="credit", tags=["credit", "企业信用", "SME"], classification="general",
            origin="derived", source="Derived from the national enterprise credit publicity "
                                     "system and court notices.",
            legal_basis="企业信息公示暂行条例 (public notices)",
            purposes=["risk_control", "credit_assessment"], delivery_mode="api",
            price_model="per_call", unit_price=300), None),
    ]


def _rule_exists(session: Session, body: dict[str, Any]) -> bool:
    """Any version, retired or not: an operator's retirement of a demo rule is respected."""
    return bool(session.scalar(select(func.count()).select_from(AdmissionRule).where(
        AdmissionRule.admission_list == body["list"], AdmissionRule.name == body["name"])))


def _listing_exists(session: Session, merchant: Party, title: str) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Listing).where(
        Listing.merchant_id == merchant.id, Listing.title == title)))


def _consent_as_named(session: Session, listing: Listing, merchant: Party) -> None:
    """The demo parties a product names (the bureau holding and authorizing the public bus
    data) agree to it, as each would through POST /consents/{id}/decide."""
    for request in consents.ask(session, listing=listing, actor=merchant):
        party = session.get(Party, request.party_id)
        assert party is not None
        consents.decide_consent(session, consent_id=request.id, party=party, accept=True,
                                note="Demo: agreed with the merchant.")


def _certify_and_approve(session: Session, cast: DemoCast, listing: Listing) -> None:
    certification.certify_listing(
        session, listing_id=listing.id, certifier=cast.certifier,
        body=CertificationSchema().load({
            "rating": "AA", "scopes": ["compliance", "security"],
            "valid_until": (clock.now() + timedelta(days=365)).isoformat(),
            "report_ref": f"DEMO-CERT-{listing.id.hex[:8].upper()}"}))
    services.review_listing(
        session, listing_id=listing.id, actor=cast.operator, decision="approve",
        reason="Compliance certification AA checked; sandbox delivery only.")


# What the demo operator grants: each merchant may list up to a classification, and the
# certification centre is accredited for every scope up to important data.
QUALIFIED_UP_TO = {"traffic": "important", "geo": "sensitive"}


def _grant_credentials(session: Session, cast: DemoCast) -> None:
    """The demo merchants' qualifications and the certifier's accreditation, once each."""
    until = (clock.now() + timedelta(days=3 * 365)).isoformat()
    for name, grade in QUALIFIED_UP_TO.items():
        merchant: Party = getattr(cast, name)
        if not session.scalar(select(func.count()).select_from(Qualification).where(
                Qualification.party_id == merchant.id)):
            qualifications.grant_qualification(
                session, party_id=merchant.id, actor=cast.operator,
                body=QualificationCreateSchema().load({
                    "max_classification": grade, "valid_until": until,
                    "evidence_ref": f"数据产品开发利用资格审核 DEMO-QUAL-{name.upper()}"}))
    if not session.scalar(select(func.count()).select_from(Accreditation).where(
            Accreditation.party_id == cast.certifier.id)):
        qualifications.grant_accreditation(
            session, party_id=cast.certifier.id, actor=cast.operator,
            body=AccreditationCreateSchema().load({
                "scopes": ["compliance", "quality", "security"],
                "max_classification": "important", "valid_until": until,
                "evidence_ref": "CNAS 认可证书 DEMO-CNAS-0001"}))


def seed_demo_catalog(session: Session, cast: DemoCast) -> CatalogSummary:
    """Create the demo rules, credentials and listings that are missing; summarize the
    demo catalog."""
    _grant_credentials(session, cast)
    created_rules = created_listings = 0
    for body in RULES:
        if not _rule_exists(session, body):
            rules.create_rule(session, actor=cast.operator,
                              body=AdmissionRuleSchema().load(body))
            created_rules += 1
    catalog = _catalog(cast)
    skipped = []
    for merchant, body, then in catalog:
        if _listing_exists(session, merchant, body["title"]):
            continue
        # A refusal (a demo merchant put under a listing ban while trying the credit
        # features) skips that product alone: the keys are still issued and printed.
        try:
            with session.begin_nested():
                listing = services.create_listing(session, merchant=merchant,
                                                  body=ListingBodySchema().load(body))
                _consent_as_named(session, listing, merchant)
                services.submit_listing(session, listing_id=listing.id, actor=merchant)
                if then == CERTIFY_AND_APPROVE:
                    _certify_and_approve(session, cast, listing)
        except DomainError as error:
            skipped.append(f"{merchant.name}: {error.code}")
            continue
        created_listings += 1
    session.flush()
    statuses = Counter(session.scalars(select(Listing.status).where(
        Listing.merchant_id.in_({cast.traffic.id, cast.geo.id}),
        Listing.title.in_([body["title"] for _, body, _ in catalog]))))
    lists = Counter(session.scalars(select(AdmissionRule.admission_list).where(
        AdmissionRule.name.in_([body["name"] for body in RULES]),
        AdmissionRule.retired_at.is_(None))))
    return CatalogSummary(
        listings_by_status={s.value: statuses[s] for s in ListingStatus if statuses[s]},
        rules_by_list={name.value: lists[name] for name in sorted(lists)},
        created_listings=created_listings, created_rules=created_rules,
        skipped=sorted(set(skipped)))
