"""Errors of the orders domain."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, NotFound


class OrderNotFound(NotFound):
    code, title = "order_not_found", "No such order"


class DemandNotFound(NotFound):
    code, title = "demand_not_found", "No such demand"


class DisputeNotFound(NotFound):
    code, title = "dispute_not_found", "No such dispute"


class OutOfStock(Conflict):
    code, title = "out_of_stock", "Not enough licenses left"


class UnpaidLimitReached(Conflict):
    code, title = "unpaid_limit_reached", "Too many unpaid licenses of this listing held"


class ListingNotAvailable(Conflict):
    code, title = "listing_not_available", "The listing cannot be ordered now"


class PurposeOutOfScope(DomainError):
    status, code, title = 422, "purpose_out_of_scope", "Purpose outside the listing's usage scope"


class InvalidBeneficiaries(DomainError):
    status, code, title = 422, "invalid_beneficiaries", "Beneficiaries must be public agencies"


class RefundExceedsPayment(Conflict):
    code, title = "refund_exceeds_payment", "Refunds would exceed what was paid"


class InvalidSignature(DomainError):
    status, code, title = 400, "invalid_signature", "The webhook signature does not verify"


class NoCompletedOrder(Forbidden):
    code, title = "no_completed_order", "Only buyers who completed an order may do this"


class PaymentProviderError(DomainError):
    status, code, title = 502, "payment_provider_error", "The payment provider refused or failed"
