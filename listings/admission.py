"""The admission engine: positive and negative lists decide whether a product may be listed.

A rule matches a listing when every criterion it sets matches (any value within a list
criterion). Any negative rule, built-in or operator-made, prohibits; otherwise any positive
rule encourages; otherwise the decision is standard. Each decision names the rules (id and
version) it matched and why.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from listings.models import (
    AdmissionList,
    AdmissionRule,
    Classification,
    DeliveryMode,
    Listing,
    Territory,
)


class Decision(enum.StrEnum):
    PROHIBITED = "prohibited"
    ENCOURAGED = "encouraged"
    STANDARD = "standard"


@dataclass(frozen=True)
class ListingFacts:
    """What admission looks at, from a stored listing or a dry-run body."""

    title: str
    description: str
    category: str
    tags: tuple[str, ...]
    classification: Classification
    contains_personal_info: bool
    anonymized: bool
    consent_basis: str | None
    territory: Territory
    delivery_mode: DeliveryMode
    cross_border_assessment_ref: str | None = None


def facts_of_listing(listing: Listing) -> ListingFacts:
    return ListingFacts(
        title=listing.title, description=listing.description, category=listing.category,
        tags=tuple(listing.tags), classification=listing.classification,
        contains_personal_info=listing.contains_personal_info, anonymized=listing.anonymized,
        consent_basis=listing.consent_basis, territory=listing.usage_scope.territory,
        delivery_mode=listing.delivery_mode,
        cross_border_assessment_ref=listing.usage_scope.cross_border_assessment_ref)


def facts_of_body(body: dict[str, Any]) -> ListingFacts:
    """Facts of a listing body as the schema loaded it (the dry run)."""
    return ListingFacts(
        title=body["title"], description=body["description"], category=body["category"],
        tags=tuple(body["tags"]), classification=body["classification"],
        contains_personal_info=body["contains_personal_info"], anonymized=body["anonymized"],
        consent_basis=body["consent_basis"], territory=body["usage_scope"]["territory"],
        delivery_mode=body["delivery_mode"],
        cross_border_assessment_ref=body["usage_scope"]["cross_border_assessment_ref"])


@dataclass(frozen=True)
class RuleMatch:
    rule_id: str
    version: int
    list: str
    name: str
    reason: str
    builtin: bool
    matched_on: tuple[str, ...]
    rule_key: str | None = None


@dataclass(frozen=True)
class AdmissionResult:
    decision: Decision
    matched_rules: tuple[RuleMatch, ...]

    @property
    def explanation(self) -> str:
        if self.decision is Decision.PROHIBITED:
            names = ", ".join(m.name for m in self.matched_rules if m.list == "negative")
            return f"Prohibited by the negative list: {names}."
        if self.decision is Decision.ENCOURAGED:
            names = ", ".join(m.name for m in self.matched_rules)
            return f"Encouraged by the positive list: {names}."
        return "No admission rule applies: standard review."

    def as_record(self) -> dict[str, Any]:
        """The decision as stored on the listing and in the audit trail."""
        return {
            "decision": self.decision.value,
            "explanation": self.explanation,
            "matched_rules": [
                {**asdict(match), "matched_on": list(match.matched_on)}
                for match in self.matched_rules
            ],
        }


@dataclass(frozen=True)
class BuiltinRule:
    """A prohibition written in code: it cannot be retired through the API."""

    id: str
    name: str
    reason: str
    applies: Callable[[ListingFacts], tuple[str, ...]]
    version: int = 1

    def match(self, facts: ListingFacts) -> RuleMatch | None:
        matched_on = self.applies(facts)
        if not matched_on:
            return None
        return RuleMatch(self.id, self.version, AdmissionList.NEGATIVE.value, self.name,
                         self.reason, True, matched_on)


def _core_data(facts: ListingFacts) -> tuple[str, ...]:
    return ("classification",) if facts.classification is Classification.CORE else ()


def _unprotected_personal_info(facts: ListingFacts) -> tuple[str, ...]:
    unprotected = (facts.contains_personal_info and not facts.anonymized
                   and not (facts.consent_basis or "").strip())
    return ("contains_personal_info", "anonymized", "consent_basis") if unprotected else ()


def _personal_information_leaving_unassessed(facts: ListingFacts) -> tuple[str, ...]:
    unassessed = (facts.contains_personal_info and facts.territory is Territory.CROSS_BORDER
                  and not (facts.cross_border_assessment_ref or "").strip())
    return ("contains_personal_info", "territory", "cross_border_assessment_ref") \
        if unassessed else ()


def _important_data_downloaded(facts: ListingFacts) -> tuple[str, ...]:
    downloaded = (facts.classification is Classification.IMPORTANT
                  and facts.delivery_mode not in (DeliveryMode.SANDBOX, DeliveryMode.API))
    return ("classification", "delivery_mode") if downloaded else ()


BUILTIN_RULES = (
    BuiltinRule("builtin:core-data", "Core data (核心数据)",
                "Core data may never be traded.", _core_data),
    BuiltinRule("builtin:unprotected-personal-information", "Unprotected personal information",
                "Personal information must be anonymized or backed by a consent basis.",
                _unprotected_personal_info),
    BuiltinRule("builtin:cross-border-personal-information",
                "Personal information leaving the territory without an assessment",
                "Personal information leaves the territory only after an outbound data "
                "security assessment (数据出境安全评估办法; 个人信息保护法 第三十八条): name it in "
                "usage_scope.cross_border_assessment_ref.",
                _personal_information_leaving_unassessed),
    BuiltinRule("builtin:important-data-delivery", "Important data outside sandbox or API",
                "Important data may be delivered only by sandbox (usable, not visible) or API.",
                _important_data_downloaded),
)

_ASCII_WORD = re.compile(r"^[\x00-\x7f]+$")


def keyword_found(keyword: str, text: str) -> bool:
    """Case-insensitive; whole words for Latin text, substrings for Chinese (no word breaks)."""
    keyword = keyword.casefold().strip()
    if not keyword:
        return False
    text = text.casefold()
    if _ASCII_WORD.match(keyword):
        return re.search(rf"(?<![a-z0-9]){re.escape(keyword)}(?![a-z0-9])", text) is not None
    return keyword in text


def rule_matches(rule: AdmissionRule, facts: ListingFacts) -> tuple[str, ...] | None:
    """The criteria on which the rule matched, or None when one of its criteria does not."""
    matched: list[str] = []
    if rule.categories:
        if facts.category.casefold() not in {c.casefold() for c in rule.categories}:
            return None
        matched.append("category")
    if rule.keywords:
        text = "\n".join([facts.title, facts.description, *facts.tags])
        if not any(keyword_found(keyword, text) for keyword in rule.keywords):
            return None
        matched.append("keywords")
    if rule.classifications:
        if facts.classification.value not in rule.classifications:
            return None
        matched.append("classification")
    if rule.contains_personal_info is not None:
        if facts.contains_personal_info != rule.contains_personal_info:
            return None
        matched.append("contains_personal_info")
    if rule.territory is not None:
        if facts.territory is not rule.territory:
            return None
        matched.append("territory")
    return tuple(matched) or None


def evaluate(facts: ListingFacts, rules: Iterable[AdmissionRule]) -> AdmissionResult:
    """Decide admission from the built-in rules and the given operator rules."""
    matches = [match for builtin in BUILTIN_RULES if (match := builtin.match(facts))]
    for rule in rules:
        matched_on = rule_matches(rule, facts)
        if matched_on:
            matches.append(RuleMatch(
                str(rule.id), rule.version, rule.admission_list.value, rule.name, rule.reason,
                False, matched_on, str(rule.rule_key)))
    negative = tuple(m for m in matches if m.list == AdmissionList.NEGATIVE.value)
    if negative:
        return AdmissionResult(Decision.PROHIBITED, negative)
    if matches:
        return AdmissionResult(Decision.ENCOURAGED, tuple(matches))
    return AdmissionResult(Decision.STANDARD, ())


def rules_in_force(session: Session, at: datetime) -> list[AdmissionRule]:
    """Operator rules in force at the given time (not retired, within their effective dates)."""
    stmt = select(AdmissionRule).where(
        AdmissionRule.retired_at.is_(None),
        AdmissionRule.effective_from <= at,
        or_(AdmissionRule.effective_to.is_(None), AdmissionRule.effective_to > at),
    ).order_by(AdmissionRule.created_at, AdmissionRule.id)
    return list(session.scalars(stmt))
