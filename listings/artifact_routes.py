"""HTTP routes of artifacts: uploads by the listing's merchant, and the signed download links."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, send_file
from flask.views import MethodView

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from app.uploads import FileUpload
from listings import artifacts, downloads
from listings.artifact_schemas import UPLOAD_BODY, ArtifactSchema, LinkQuerySchema

blp = Blueprint("artifacts", __name__, url_prefix="/api/v1",
                description="Data artifacts: files merchants upload, hashed by the exchange, "
                            "and the signed links buyers download them through")


@blp.route("/listings/<uuid:listing_id>/artifacts", tags=["listings"],
           operation_ids={"post": "uploadArtifact", "get": "listArtifacts"})
class ListingArtifacts(MethodView):
    @blp.doc(requestBody=UPLOAD_BODY)
    @require_role(Role.MERCHANT)
    @blp.response(201, ArtifactSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, listing_id: uuid.UUID) -> Any:
        """Upload a data file of your listing (multipart/form-data, part `file`).

        The file streams to storage while the exchange computes its SHA-256 and size, the
        checksum of every delivery made with it. Beyond ARTIFACT_MAX_BYTES: 413, and nothing
        is stored. Artifacts are never public: buyers download them through short-lived
        links issued under their licences.
        """
        upload = FileUpload.from_request(field="file",
                                         max_bytes=current_app.config["ARTIFACT_MAX_BYTES"])
        return artifacts.upload_artifact(listing_id=listing_id, actor=current_party(),
                                         upload=upload)

    @require_role()
    @blp.response(200, ArtifactSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLPage)
    def get(self, listing_id: uuid.UUID) -> Any:
        """The artifacts of your listing, newest first (its merchant only)."""
        return artifacts.artifacts_query(listing_id=listing_id, viewer=current_party())


@blp.route("/artifacts/<uuid:artifact_id>/content", operation_ids={"get": "downloadArtifact"})
class ArtifactContent(MethodView):
    @blp.doc(security=[])
    @blp.arguments(LinkQuerySchema, location="query")
    @blp.response(200, {"type": "string", "format": "binary"},
                  content_type="application/octet-stream",
                  description="The file's bytes, as its own media type; Range and "
                              "If-None-Match (the SHA-256) are honoured")
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, link: dict[str, Any], artifact_id: uuid.UUID) -> Any:
        """Download an artifact through a signed link (no API key: the link is the permission).

        The link comes from a licence's download (303 to here when the exchange stores files
        itself); it names the party and licence it was issued to and expires after
        DOWNLOAD_URL_TTL_SECONDS. An altered or expired link: 403 (`download_link_invalid`,
        `download_link_expired`).
        """
        with unit_of_work() as session:
            content = downloads.follow_link(
                session, artifact_id=artifact_id, expires=link.get("expires"),
                party=link.get("party"), license_id=link.get("license"), sig=link.get("sig"))
            artifact = content.artifact
            name, mimetype, sha256 = artifact.filename, artifact.content_type, artifact.sha256
        response = send_file(content.path or content.stream,  # type: ignore[arg-type]
                             mimetype=mimetype, as_attachment=True, download_name=name,
                             conditional=content.path is not None, etag=sha256, max_age=0)
        response.headers["Cache-Control"] = "private, no-store"
        return response
