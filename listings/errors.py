"""Errors of the listings domain."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, NotFound


class ListingNotFound(NotFound):
    code, title = "listing_not_found", "No such listing"


class AdmissionProhibited(DomainError):
    """The listing stays rejected with its decision: the attempt itself is on record."""

    status, code, title = 422, "admission_prohibited", "Prohibited by the admission lists"
    keeps_changes = True


class AdmissionProhibitedNow(AdmissionProhibited):
    """An approval or relisting refused by the rules now in force: nothing changes.

    Unlike a submission, the merchant attempted nothing here (a rule added since, or an
    operator's decision, is refused), so there is no rejection or finding to keep: the listing
    stays as it was and the operator rejects, suspends or delists it with a reason.
    """

    keeps_changes = False


class OperationRightRequired(DomainError):
    status, code = 422, "operation_right_required"
    title = "The seller must hold the product-operation right"


class UnknownParties(DomainError):
    status, code, title = 422, "unknown_party", "Referenced parties do not exist"


class CertificationRequired(DomainError):
    status, code, title = 422, "certification_required", "A valid certification is required"


class ExpiredCertification(DomainError):
    status, code, title = 422, "validation_error", "valid_until must be in the future"


class OwnListing(Forbidden):
    """A party acting on its own listing where an independent party is required."""

    code, title = "own_listing", "Not allowed on your own listing"


class QualityAlreadyReported(Conflict):
    code, title = "quality_already_reported", "You have already reported on this listing"


class NotFlagged(Conflict):
    code, title = "not_flagged", "The listing is not flagged for review"


class PreconditionFailed(DomainError):
    status, code, title = 412, "precondition_failed", "If-Match does not match the current version"


class MalformedIfMatch(DomainError):
    status, code, title = 400, "bad_request", "If-Match must be an ETag such as \"3\""


class RuleNotFound(NotFound):
    code, title = "admission_rule_not_found", "No such admission rule"


class InvalidRule(DomainError):
    status, code, title = 422, "validation_error", "The admission rule is not valid"


class PriceOutOfBand(DomainError):
    status, code, title = 422, "price_out_of_band", "Price outside the binding guide band"


class OverlappingGuidePrice(Conflict):
    code, title = "overlapping_guide_price", "Overlaps a binding guide price of the same scope"


class InvalidRevenuePlan(DomainError):
    status, code, title = 422, "invalid_revenue_plan", "The revenue-share plan does not add up"


class EmptyArtifact(DomainError):
    status, code, title = 422, "empty_artifact", "The uploaded file is empty"


class UnknownArtifact(DomainError):
    status, code, title = 422, "unknown_artifact", "Not an artifact of this listing"


class ChecksumMismatch(DomainError):
    status, code, title = 422, "checksum_mismatch", "The checksum is not the artifact's SHA-256"


class DownloadLinkInvalid(Forbidden):
    code, title = "download_link_invalid", "The download link is not valid"


class DownloadLinkExpired(Forbidden):
    code, title = "download_link_expired", "The download link has expired"
class ConsentPending(Conflict):
    """A submission waits for the parties the listing names; the requests it made are kept."""

    code, title = "consent_pending", "Waiting for the consent of the parties named"
    keeps_changes = True


class ConsentDeclined(DomainError):
    status, code, title = 422, "consent_declined", "A party named on the listing declined"


class ConsentNotFound(NotFound):
    code, title = "consent_not_found", "No such consent request"


class AuthorizationRequired(DomainError):
    status, code = 422, "authorization_required"
    title = "Public data under authorized operation needs its authorization"


class AuthorizationExpired(DomainError):
    status, code, title = 422, "authorization_expired", "The authorization has expired"


class AuthorityNotPublicAgency(DomainError):
    status, code = 422, "authority_not_public_agency"
    title = "The authorizing authority must be a public agency"


class PublicAuthorityShareRequired(DomainError):
    status, code = 422, "public_authority_share_required"
    title = "Public data shares its revenue with the authority"


class NotQualified(DomainError):
    status, code = 422, "not_qualified"
    title = "The merchant holds no qualification for this classification"


class NotAccredited(Forbidden):
    code, title = "not_accredited", "The certifier holds no accreditation for this"


class CertificationNotFound(NotFound):
    code, title = "certification_not_found", "No such certification"


class PartyNotFound(NotFound):
    code, title = "party_not_found", "No such party"


class RoleRequired(DomainError):
    status, code, title = 422, "role_required", "The party does not hold the role needed"
