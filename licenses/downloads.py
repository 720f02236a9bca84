"""Downloads under a licence: a short-lived link to the delivered artifact for the licence's
buyer or beneficiaries while it is in force, and links refused once it is not.

A link issued by the filesystem store comes back to the service (listings.downloads), which
asks `download_requested` before serving it: a licence suspended, revoked or expired since
the link was issued stops it at once. An S3 presigned link cannot be recalled; it lives
`DOWNLOAD_URL_TTL_SECONDS` at most.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app import clock
from app.parties.models import Actor
from licenses.errors import LicenseInactive, NothingToDownload
from licenses.models import License
from licenses.services import license_in_use
from listings.artifacts import Artifact
from listings.downloads import download_for, download_requested
from listings.models import DeliveryMode


def download_link(session: Session, *, license_id: uuid.UUID, holder: Actor) -> str:
    """A link to the licence's delivered file for its buyer or a beneficiary (logged by
    `download_for`): 404 to whoever may not see the licence, 403 to its merchant and the
    overseers, 403 `license_inactive` unless it is in force, 409 when the data was delivered
    outside the exchange."""
    license = license_in_use(session, license_id=license_id, holder=holder,
                             delivery_mode=DeliveryMode.DOWNLOAD, at=clock.now())
    if license.artifact_id is None:
        raise NothingToDownload("The merchant delivered this licence's data outside the "
                                "exchange (a reference, not a file it holds).")
    artifact = session.get(Artifact, license.artifact_id)
    assert artifact is not None and holder.id is not None  # a licence's artifact is kept
    return download_for(session, artifact=artifact, party_id=holder.id, license_id=license.id)


@download_requested.connect
def refuse_links_of_licences_out_of_force(session: Session, *, license_id: uuid.UUID | None,
                                          **_: Any) -> None:
    """A link issued under a licence works only while the licence is in force."""
    # The link is signed, so its licence id is one this service issued it under (licences
    # are never deleted); a link issued outside a licence names none.
    license = session.get(License, license_id) if license_id else None
    if license is not None and not license.in_force(clock.now()):
        raise LicenseInactive("The licence this link was issued under is no longer in force.",
                              status=license.status.value)
