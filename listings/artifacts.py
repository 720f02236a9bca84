"""Data artifacts: the files a merchant uploads for a listing, hashed by the exchange.

An artifact is never public. Its merchant lists and delivers it; a buyer reaches its bytes only
through a short-lived download link (listings.downloads). The SHA-256 the exchange computes
while the file streams to storage is the checksum of every delivery that names the artifact.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Select, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import audit
from app.db import Base, created_at, unit_of_work, uuid_pk
from app.extensions import db
from app.parties.models import Actor
from app.storage import current_storage
from app.uploads import FileUpload
from listings.errors import EmptyArtifact, ListingNotFound, UnknownArtifact
from listings.models import Listing


class Artifact(Base):
    """One uploaded file of a listing: where it is stored, its name, size and SHA-256."""

    __tablename__ = "artifacts"

    id: Mapped[uuid_pk]
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    storage_key: Mapped[str] = mapped_column(String(500), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[created_at]

    # A listing's artifacts, newest first.
    __table_args__ = (Index("ix_artifacts_listing_uploaded", "listing_id", "uploaded_at"),)

    @property
    def checksum(self) -> str:
        """The delivery checksum it stands for, in the `sha256:<hex>` form orders carry."""
        return f"sha256:{self.sha256}"

    def matches(self, checksum: str) -> bool:
        """A checksum a merchant states is this artifact's SHA-256 (`sha256:<hex>` or the
        hex alone, in either case)."""
        stated = checksum.strip().lower()
        return stated.removeprefix("sha256:") == self.sha256


def _owned_listing(session: Session, listing_id: uuid.UUID,
                   actor_id: uuid.UUID | None) -> Listing:
    listing = session.get(Listing, listing_id)
    if listing is None or listing.merchant_id != actor_id:
        raise ListingNotFound()  # another merchant's listing: not revealed
    return listing


def upload_artifact(*, listing_id: uuid.UUID, actor: Actor, upload: FileUpload) -> Artifact:
    """Stream the merchant's file to storage, hashing it on the way, and record it.

    Two short transactions, with none open while the bytes arrive: a transaction left open
    for the minutes a large upload may take would hold a database connection and, on
    PostgreSQL, hold back the evidence log's sealer (it integrates entries below the oldest
    open transaction). The first checks that the listing is the actor's; the second records
    the artifact. A refused or broken upload leaves nothing stored, and neither does a
    record that fails to commit.
    """
    actor_id, artifact_id = actor.id, uuid.uuid4()
    with unit_of_work() as session:
        _owned_listing(session, listing_id, actor_id)
    key = f"listings/{listing_id}/{artifact_id}"
    storage = current_storage()
    stored = storage.put(key, upload.chunks())
    try:
        if stored.size == 0:
            raise EmptyArtifact("The file is empty: there is nothing to deliver.",
                                errors={upload.field: ["The file is empty."]})
        with unit_of_work() as session:
            _owned_listing(session, listing_id, actor_id)
            artifact = Artifact(id=artifact_id, listing_id=listing_id, merchant_id=actor_id,
                                storage_key=key, filename=upload.filename or "upload",
                                content_type=upload.content_type or "application/octet-stream",
                                size=stored.size, sha256=stored.sha256)
            session.add(artifact)
            session.flush()
            audit.record(session, actor_id=actor_id, action="artifact.uploaded",
                         subject=artifact, listing_id=listing_id,
                         details={"sha256": stored.sha256, "size": stored.size,
                                  "filename": artifact.filename})
    except BaseException:
        storage.delete(key)
        raise
    return artifact


def artifacts_query(*, listing_id: uuid.UUID, viewer: Actor) -> Select[tuple[Artifact]]:
    """The artifacts of the viewer's own listing, newest first (anyone else: 404)."""
    _owned_listing(db.session(), listing_id, viewer.id)
    return (select(Artifact).where(Artifact.listing_id == listing_id)
            .order_by(Artifact.uploaded_at.desc(), Artifact.id))


def artifact_for_delivery(session: Session, *, listing_id: uuid.UUID,
                          artifact_id: uuid.UUID) -> Artifact:
    """The artifact an order of the listing is delivered with (422 for any other id)."""
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.listing_id != listing_id:
        raise UnknownArtifact("No artifact of the order's listing has this id.",
                              errors={"artifact_id": ["Not an artifact of this listing."]})
    return artifact
