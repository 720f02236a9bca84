"""Errors of the parties domain."""

from __future__ import annotations

from app.errors import Conflict, DomainError


class InvalidCreditCode(DomainError):
    status, code, title = 422, "invalid_credit_code", "Invalid unified social credit code"


class DuplicateCreditCode(Conflict):
    code, title = "duplicate_credit_code", "A party with this credit code exists"
