"""Public data under authorized operation (公共数据授权运营): what such a listing must carry.

A product of public data is sold by an operator the public authority authorized: the listing
records that authorization (the authority, a public agency; the document; its expiry), and the
authority takes a share of the proceeds (a `public_authority` revenue-share line naming it).
The authority, named by the listing, is also asked to consent like the other parties named.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.parties.models import Party, PartyKind
from listings.errors import (
    AuthorityNotPublicAgency,
    AuthorizationExpired,
    AuthorizationRequired,
    PublicAuthorityShareRequired,
)
from listings.models import Listing, ShareRole, SourceOrigin

_FIELD = "source.authorization"


def ensure_authorized(session: Session, listing: Listing, at: datetime) -> None:
    """Refuse (422) public data without a valid authorization by a public agency, or
    without the authority's revenue share; other origins pass."""
    if listing.source.origin is not SourceOrigin.PUBLIC_AUTHORIZED:
        return
    authorization = listing.source.authorization
    if authorization is None:
        raise AuthorizationRequired(
            "Public data under authorized operation (公共数据授权运营) must record its "
            "authorization: source.authorization {authority_id, document_ref, valid_until}.",
            errors={_FIELD: ["Required when source.origin is public_authorized."]})
    authority = session.get(Party, authorization.authority_id)
    if authority is None or authority.kind is not PartyKind.PUBLIC_AGENCY:
        raise AuthorityNotPublicAgency(
            f"The authority {authorization.authority_id} is not a public agency: only a "
            f"public agency authorizes the operation of public data.",
            errors={f"{_FIELD}.authority_id": ["Must be a party of kind public_agency."]})
    if authorization.valid_until <= at:
        raise AuthorizationExpired(
            f"The authorization {authorization.document_ref} expired at "
            f"{authorization.valid_until.isoformat()}.",
            errors={f"{_FIELD}.valid_until": ["The authorization has expired."]})
    if not any(share["role"] == ShareRole.PUBLIC_AUTHORITY
               and share["party_id"] == str(authorization.authority_id)
               for share in listing.revenue_shares):
        raise PublicAuthorityShareRequired(
            "Public data shares its revenue with the authority that authorized it: add a "
            f"revenue_shares line with role public_authority for {authorization.authority_id}.",
            errors={"revenue_shares": ["Needs a public_authority line naming the authority."]})
