"""Errors of the licences domain."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, NotFound


class LicenseNotFound(NotFound):
    code, title = "license_not_found", "No such licence"


class LicenseInactive(Forbidden):
    code, title = "license_inactive", "The licence is not active"


class CallsExhausted(DomainError):
    status, code, title = 422, "calls_exhausted", "Not enough calls left on the licence"


class NotPerCall(DomainError):
    status, code, title = 422, "not_per_call", "Usage is counted for per-call licences only"


class DeliveryModeMismatch(Conflict):
    code, title = "delivery_mode_mismatch", "The licence is not delivered this way"


class NotRenewable(Conflict):
    code, title = "not_renewable", "Only subscriptions with a term are renewed"


class RenewalInProgress(Conflict):
    code, title = "renewal_in_progress", "A renewal of this licence is not finished yet"


class NothingToDownload(Conflict):
    code, title = "nothing_to_download", "The data was delivered outside the exchange"
