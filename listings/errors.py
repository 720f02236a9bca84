"""Errors of the listings domain."""

from __future__ import annotations

from app.errors import DomainError, NotFound


class ListingNotFound(NotFound):
    code, title = "listing_not_found", "No such listing"


class AdmissionProhibited(DomainError):
    """The listing stays rejected with its decision: the attempt itself is on record."""

    status, code, title = 422, "admission_prohibited", "Prohibited by the admission lists"
    keeps_changes = True


class OperationRightRequired(DomainError):
    status, code = 422, "operation_right_required"
    title = "The seller must hold the product-operation right"


class UnknownParties(DomainError):
    status, code, title = 422, "unknown_party", "Referenced parties do not exist"


class CertificationRequired(DomainError):
    status, code, title = 422, "certification_required", "A valid certification is required"


class PreconditionFailed(DomainError):
    status, code, title = 412, "precondition_failed", "If-Match does not match the current version"


class RuleNotFound(NotFound):
    code, title = "admission_rule_not_found", "No such admission rule"


class InvalidRule(DomainError):
    status, code, title = 422, "validation_error", "The admission rule is not valid"
