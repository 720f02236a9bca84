"""HTTP routes of licences, their access tokens, usage and token introspection.

Renewal creates an order, so its route (POST /licenses/{id}/renew) is served by orders.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from app.api import Blueprint, SQLPage
from app.db import unit_of_work
from app.parties.auth import current_party, require_role
from licenses import services
from licenses.schemas import LicenseQueryArgsSchema, LicenseSchema

blp = Blueprint("licenses", __name__, url_prefix="/api/v1",
                description="Licences: terms enforced after the sale, API access, usage")


@blp.route("/licenses", operation_ids={"get": "listLicenses"})
class Licenses(MethodView):
    @require_role()
    @blp.arguments(LicenseQueryArgsSchema, location="query")
    @blp.response(200, LicenseSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Licences you hold (buyer, beneficiary) or granted (merchant); all for overseers."""
        return services.licenses_query(viewer=current_party(), **args)


@blp.route("/licenses/<uuid:license_id>", operation_ids={"get": "getLicense"})
class LicenseDetail(MethodView):
    @require_role()
    @blp.response(200, LicenseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, license_id: uuid.UUID) -> Any:
        """A licence, for its buyer, beneficiaries and merchant, operators and regulators."""
        with unit_of_work() as session:
            return services.get_license(session, license_id=license_id, viewer=current_party())
