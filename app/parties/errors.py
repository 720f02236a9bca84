"""Errors of the parties domain."""

from __future__ import annotations

from app.errors import Conflict, DomainError


class InvalidCreditCode(DomainError):
    status, code, title = 422, "invalid_credit_code", "Invalid unified social credit code"


class DuplicateCreditCode(Conflict):
    code, title = "duplicate_credit_code", "A party with this credit code exists"


class InvalidPartyName(DomainError):
    status, code, title = 422, "invalid_party_name", "Invalid party name"


class DuplicatePartyName(Conflict):
    code, title = "duplicate_party_name", "A party with this name exists"
