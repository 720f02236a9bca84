"""The evidence log over HTTP: checkpoint, public key, entries and proofs."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from app.api import Blueprint
from app.db import unit_of_work
from app.log import services
from app.log.keys import log_verifier
from app.log.schemas import (
    CheckpointSchema,
    ConsistencyProofSchema,
    ConsistencyQueryArgsSchema,
    DocumentSchema,
    InclusionProofSchema,
    InclusionQueryArgsSchema,
    LogEntrySchema,
    PublicKeySchema,
    VerificationSchema,
)
from app.parties.auth import require_role
from app.parties.models import Role

blp = Blueprint("log", __name__, url_prefix="/api/v1/log",
                description="The evidence log: signed checkpoints, entries and Merkle proofs")

evidence_blp = Blueprint("evidence", __name__, url_prefix="/api/v1/evidence",
                         description="Verification of vouchers and certificates")

_NOTE_MIMETYPE = "text/plain"


@blp.route("/checkpoint", operation_ids={"get": "getLogCheckpoint"})
class LatestCheckpoint(MethodView):
    @blp.doc(security=[])
    @blp.response(200, CheckpointSchema, description="The signed note as text/plain, or as JSON "
                                                     "with Accept: application/json")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self) -> Any:
        """The latest signed checkpoint (C2SP tlog-checkpoint note)."""
        with unit_of_work() as session:
            checkpoint = services.current_checkpoint(session)
        wants_json = request.accept_mimetypes.best_match(
            [_NOTE_MIMETYPE, "application/json"]) == "application/json"
        if not wants_json:
            return Response(checkpoint.signed_note, mimetype=_NOTE_MIMETYPE)
        return services.checkpoint_document(checkpoint)


@blp.route("/public-key", operation_ids={"get": "getLogPublicKey"})
class PublicKey(MethodView):
    @blp.doc(security=[])
    @blp.response(200, PublicKeySchema)
    def get(self) -> dict[str, str]:
        """The verifier key of the log's checkpoints (signed-note vkey format)."""
        verifier = log_verifier()
        return {"vkey": verifier.vkey, "key_name": verifier.name,
                "key_id": f"{verifier.key_id:08x}", "algorithm": "ed25519"}


@blp.route("/entries/<int:index>", operation_ids={"get": "getLogEntry"})
class Entry(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, LogEntrySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, index: int) -> services.LogEntry:
        """One leaf of the log: the entry's canonical JSON and its hash (404 until sealed)."""
        with unit_of_work() as session:
            return services.log_entry(session, index=index)


@blp.route("/proof/inclusion", operation_ids={"get": "getLogInclusionProof"})
class InclusionProof(MethodView):
    @blp.doc(security=[])
    @blp.arguments(InclusionQueryArgsSchema, location="query")
    @blp.response(200, InclusionProofSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, int]) -> dict[str, Any]:
        """The audit path of a leaf in a signed tree (RFC 9162 §2.1.3)."""
        with unit_of_work() as session:
            return services.inclusion(session, **args)


@blp.route("/proof/consistency", operation_ids={"get": "getLogConsistencyProof"})
class ConsistencyProof(MethodView):
    @blp.doc(security=[])
    @blp.arguments(ConsistencyQueryArgsSchema, location="query")
    @blp.response(200, ConsistencyProofSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, int]) -> dict[str, Any]:
        """The proof that a signed tree extends a smaller signed one (RFC 9162 §2.1.4)."""
        with unit_of_work() as session:
            return services.consistency(session, **args)



@evidence_blp.route("/verify", operation_ids={"post": "verifyEvidence"})
class VerifyEvidence(MethodView):
    @evidence_blp.doc(security=[])
    @evidence_blp.arguments(DocumentSchema)
    @evidence_blp.response(200, VerificationSchema)
    @evidence_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, document: dict[str, Any]) -> dict[str, Any]:
        """Check a voucher or certificate: signature, inclusion, facts digest, consistency."""
        with unit_of_work() as session:
            return services.verify_document(session, document, log_verifier())
