"""Errors of the credit domain."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, NotFound


class PartyRestricted(Forbidden):
    code, title = "party_restricted", "Restricted by a credit penalty"


class UnknownEventKind(DomainError):
    status, code, title = 422, "validation_error", "Not a kind in the credit event catalog"


class CreditEventNotFound(NotFound):
    code, title = "credit_event_not_found", "No such credit event"


class CreditFileNotFound(NotFound):
    code, title = "credit_file_not_found", "No such credit file"


class ObjectionPending(Conflict):
    code, title = "objection_pending", "An objection to this event is already pending"


class RepairPending(Conflict):
    code, title = "repair_pending", "A repair of this event is already pending"


class RepairNotEligible(DomainError):
    status, code, title = 422, "repair_not_eligible", "Not eligible for credit repair"
