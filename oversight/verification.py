"""The public verification page's checks: a voucher or certificate looked up by its number,
or pasted as the JSON it was served as, checked by the evidence log's own verification
(`app.log.services.verify_document`, the service behind POST /evidence/verify).

Looked up by number, a document's checks are shown and its facts are not: numbers follow the
log and are easy to guess, and a voucher's facts (who bought what, for how much) are its
parties' alone. Pasted, the facts are the visitor's own and are shown back beside the checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from app.db import unit_of_work
from app.log.document_check import Check
from app.log.keys import log_verifier
from app.log.schemas import DocumentSchema
from app.log.services import verify_document
from listings.certificates import certificate_by_number
from orders.vouchers import voucher_by_number

# How the page names the checks and the kinds of document.
CHECKS = {"signature": ("检查点签名", "Checkpoint signed by the exchange's key"),
          "inclusion": ("包含证明", "Leaf included in the signed tree"),
          "facts_digest": ("事实摘要", "Facts are those logged"),
          "consistency": ("与当前日志一致", "Consistent with the log's current checkpoint")}
KINDS = {"transaction_voucher": "交易凭证 Transaction voucher",
         "registration_certificate": "数据产品登记证书 Registration certificate"}

# Each finds a document by its number, or says it is not one of its own (None).
FINDERS: tuple[Callable[[str], dict[str, Any] | None], ...] = (
    voucher_by_number, certificate_by_number)


@dataclass(frozen=True)
class Verification:
    """What the page shows of one document: its number and kind, where its leaf is, each check
    and the verdict, and the facts when the visitor pasted them; or why nothing was checked."""

    number: str | None = None
    kind: str | None = None
    log_index: int | None = None
    leaf_hash: str | None = None
    tree_size: int | None = None
    checks: list[Check] = field(default_factory=list)
    valid: bool = False
    facts: dict[str, Any] | None = None
    problem: str | None = None
    errors: dict[str, Any] | None = None

    @property
    def facts_text(self) -> str:
        return json.dumps(self.facts, ensure_ascii=False, indent=2, sort_keys=True)

    @property
    def errors_text(self) -> str:
        return json.dumps(self.errors, ensure_ascii=False, indent=2, sort_keys=True)


def check_number(number: str) -> Verification:
    """The checks of the voucher or certificate with this number (`TV-42`, `RC-7`)."""
    number = number.strip()
    document = next((found for finder in FINDERS if (found := finder(number)) is not None),
                    None)
    if document is None:
        return Verification(number=number, problem="not_found")
    return _checked(document, show_facts=False)


def check_pasted(text: str) -> Verification:
    """The checks of a voucher or certificate pasted as JSON, as it was served."""
    try:
        pasted = json.loads(text)
    except (ValueError, RecursionError):
        return Verification(problem="not_json")
    try:
        document = DocumentSchema().load(pasted)
    except ValidationError as error:
        return Verification(problem="not_a_document", errors=_errors(error.messages))
    return _checked(document, show_facts=True)


def _checked(document: dict[str, Any], *, show_facts: bool) -> Verification:
    with unit_of_work() as session:
        result = verify_document(session, document, log_verifier())
    evidence = document["evidence"]
    return Verification(
        number=document.get("voucher_no") or document.get("certificate_no"),
        kind=document.get("kind"), log_index=evidence["log_index"],
        leaf_hash=evidence["leaf_hash"], tree_size=evidence["tree_size"],
        checks=result["checks"], valid=result["valid"],
        facts=document["facts"] if show_facts else None)


def _errors(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}
