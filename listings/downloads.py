"""Download links to artifacts: short-lived, logged, and signed where the store cannot sign.

`download_for` issues a link valid DOWNLOAD_URL_TTL_SECONDS and logs who it was issued to,
when, for which artifact and its SHA-256 (and the licence it was issued under, if any). An S3
store signs the link itself (a presigned GET). A filesystem store cannot, so the service signs
one to its own route, `GET /api/v1/artifacts/{id}/content?expires=&party=&license=&sig=`: an
HMAC-SHA256, under a key derived from SECRET_KEY, of the artifact, the party, the licence and
the expiry, so none of them can be changed or the link stretched. Like a presigned URL the link
itself is the permission: it needs no API key (a browser or `curl -L` follows it as it is).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from blinker import Namespace
from flask import current_app, has_request_context, url_for
from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import audit, clock
from app.db import Base, uuid_pk
from app.storage import current_storage
from listings.artifacts import Artifact
from listings.errors import DownloadLinkExpired, DownloadLinkInvalid

CONTENT_ENDPOINT = "artifacts.ArtifactContent"

_signals = Namespace()
# Sent with the session when a signed link is followed (`artifact=`, `party_id=`,
# `license_id=`): a receiver raises a DomainError to refuse it, such as for a licence revoked
# or suspended since the link was issued (listings knows nothing of licences).
download_requested = _signals.signal("download-requested")


class DownloadLog(Base):
    """One download link issued: to whom, when, for which artifact and its hash, under which
    licence (null for links issued outside one), and until when it works."""

    __tablename__ = "download_logs"

    id: Mapped[uuid_pk]
    artifact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("artifacts.id"))
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    # The licences' table is the licences domain's: the id is kept without a foreign key.
    license_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    sha256: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_download_logs_artifact_issued", "artifact_id", "issued_at"),
        Index("ix_download_logs_license_issued", "license_id", "issued_at"),
    )


def download_for(session: Session, *, artifact: Artifact, party_id: uuid.UUID,
                 license_id: uuid.UUID | None = None) -> str:
    """A link to the artifact's bytes for the party, valid DOWNLOAD_URL_TTL_SECONDS; the
    issue is logged (DownloadLog) and audited in the listing's trace. The caller has decided
    that the party may download it (an active licence)."""
    ttl = current_app.config["DOWNLOAD_URL_TTL_SECONDS"]
    now = clock.now()
    expires_at = now + timedelta(seconds=ttl)
    url = current_storage().presigned_url(artifact.storage_key, expires_in=ttl,
                                          download_name=artifact.filename)
    if url is None:
        expires = int(expires_at.timestamp())
        url = url_for(CONTENT_ENDPOINT, artifact_id=artifact.id, expires=expires,
                      party=party_id, license=license_id or None,
                      sig=link_signature(artifact.id, party_id, license_id, expires),
                      _external=has_request_context())
    session.add(DownloadLog(artifact_id=artifact.id, party_id=party_id, license_id=license_id,
                            sha256=artifact.sha256, issued_at=now, expires_at=expires_at))
    audit.record(session, actor_id=party_id, action="artifact.downloaded", subject=artifact,
                 listing_id=artifact.listing_id,
                 details={"sha256": artifact.sha256, "party_id": str(party_id),
                          "license_id": str(license_id) if license_id else None,
                          "expires_at": expires_at.isoformat()})
    return url


def link_signature(artifact_id: uuid.UUID, party_id: uuid.UUID, license_id: uuid.UUID | None,
                   expires: int) -> str:
    """The link's HMAC-SHA256 (base64url, unpadded), under a key of its own derived from
    SECRET_KEY (so a signature made for another purpose never passes for one of these)."""
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), b"artifact-download-link",
                   hashlib.sha256).digest()
    message = f"{artifact_id}|{party_id}|{license_id or ''}|{expires}".encode()
    signature = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@dataclass(frozen=True)
class Content:
    """What a followed link serves: the artifact, and its file here or a stream of it."""

    artifact: Artifact
    path: Path | None
    stream: IO[bytes] | None


def follow_link(session: Session, *, artifact_id: uuid.UUID, expires: int | None,
                party: uuid.UUID | None, license_id: uuid.UUID | None,
                sig: str | None) -> Content:
    """The artifact a signed link names, if the signature holds and the link has not expired
    (403 otherwise: `download_link_invalid`, `download_link_expired`)."""
    if expires is None or party is None or not sig:
        raise DownloadLinkInvalid("This link is not signed: ask for a new download link.")
    expected = link_signature(artifact_id, party, license_id, expires)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise DownloadLinkInvalid("The link's signature does not match: it was altered.")
    if clock.now().timestamp() > expires:
        raise DownloadLinkExpired("The link has expired: ask for a new download link.")
    artifact = session.get(Artifact, artifact_id)
    if artifact is None:
        raise DownloadLinkInvalid("The artifact of this link is no longer held.")
    download_requested.send(session, artifact=artifact, party_id=party, license_id=license_id)
    storage = current_storage()
    path = storage.local_path(artifact.storage_key)
    return Content(artifact, path, None if path is not None else storage.open(
        artifact.storage_key))
