"""HTTP routes of orders and disputes."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView

from app.api import PDF_CONTENT, PDF_MIMETYPE, Blueprint, SQLPage, negotiate, pdf_response
from app.db import unit_of_work
from app.idempotency import idempotent
from app.limits import limit
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from listings.pricing_schemas import PriceGuidanceSchema
from listings.schemas import QualityReportCreateSchema, QualityReportSchema
from orders import disputes, market, renewals, services, vouchers, webhooks
from orders.schemas import (
    DeliverySchema,
    DisputeCreateSchema,
    DisputeResolutionSchema,
    DisputeSchema,
    OrderCreateSchema,
    OrderQueryArgsSchema,
    OrderSchema,
    PaymentConfirmSchema,
    VoucherSchema,
    WebhookAckSchema,
)

blp = Blueprint("orders", __name__, url_prefix="/api/v1",
                description="Orders: purchase, payment, delivery, acceptance, disputes")

STRIPE_EVENT_EXAMPLE = {
    "id": "evt_3PfK2vLkdIwHu7ix0Q8cRz1m", "object": "event", "api_version": "2024-06-20",
    "type": "payment_intent.succeeded", "created": 1781251200,
    "data": {"object": {"id": "pi_3PfK2vLkdIwHu7ix0aB4nT9e", "object": "payment_intent",
                        "amount": 120_000, "currency": "cny", "status": "succeeded",
                        "metadata": {"order_id": "2f7d9c1e-4b6a-4e83-9a0f-5c1d7e2b8a64"}}},
}


@blp.route("/orders", operation_ids={"post": "placeOrder", "get": "listOrders"})
class Orders(MethodView):
    @limit("RATE_LIMIT_TRADING")
    @require_role(Role.BUYER)
    @idempotent
    @blp.arguments(OrderCreateSchema)
    @blp.response(201, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any]) -> Any:
        """Buy licenses of a listed product (Idempotency-Key); the license is frozen now."""
        with unit_of_work() as session:
            return services.place_order(session, buyer=current_party(), **body)

    @require_role()
    @blp.arguments(OrderQueryArgsSchema, location="query")
    @blp.response(200, OrderSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Your orders as buyer or merchant (all of them for operators and regulators)."""
        return services.orders_query(viewer=current_party(), **args)


@blp.route("/orders/<uuid:order_id>", operation_ids={"get": "getOrder"})
class OrderDetail(MethodView):
    @require_role()
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, order_id: uuid.UUID) -> Any:
        """An order, for its buyer, its merchant, operators and regulators."""
        with unit_of_work() as session:
            return services.get_order(session, order_id=order_id, viewer=current_party())


@blp.route("/orders/<uuid:order_id>/voucher", operation_ids={"get": "getOrderVoucher"})
class OrderVoucher(MethodView):
    @require_role()
    @blp.response(200, VoucherSchema, description="JSON, or a printable PDF with Accept: "
                                                  "application/pdf")
    @blp.doc(responses={200: PDF_CONTENT})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(406, response="NOT_ACCEPTABLE")
    @blp.alt_response(409, response="CONFLICT")
    def get(self, order_id: uuid.UUID) -> Any:
        """The transaction voucher of a completed order, with the log's proof of its facts."""
        media = negotiate("application/json", PDF_MIMETYPE)
        document = vouchers.voucher(order_id=order_id, viewer=current_party())
        if media == PDF_MIMETYPE:
            return pdf_response(vouchers.voucher_pdf(document), document["voucher_no"])
        return document


@blp.route("/orders/<uuid:order_id>/payment", operation_ids={"get": "getOrderPayment"})
class OrderPayment(MethodView):
    @require_role(Role.BUYER)
    @blp.response(200, OrderSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def get(self, order_id: uuid.UUID) -> Any:
        """The order with what its buyer needs to pay it, while it is unpaid.

        `payment.client_secret` for Stripe, transfer instructions offline.
        """
        with unit_of_work() as session:
            return services.payment_details(session, order_id=order_id, actor=current_party())


@blp.route("/orders/<uuid:order_id>/cancel", operation_ids={"post": "cancelOrder"})
class CancelOrder(MethodView):
    @require_role(Role.BUYER)
    @idempotent
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(502, response="BAD_GATEWAY")
    def post(self, order_id: uuid.UUID) -> Any:
        """Cancel an order (its buyer; Idempotency-Key): unpaid, or paid and undelivered.

        An unpaid order ends `cancelled`. A paid order not yet delivered is refunded in full
        through its payment provider (a Stripe refund, or a bank transfer recorded for the
        finance team) and ends `refunded`, with no credit finding. Either way its licenses
        go back on sale. Delivered or finished orders answer 409 `invalid_transition`;
        a provider that fails the refund, 502 `payment_provider_error` (nothing recorded).
        """
        with unit_of_work() as session:
            return services.cancel_order(session, order_id=order_id, actor=current_party())


@blp.route("/orders/<uuid:order_id>/payments/confirm", operation_ids={"post": "confirmPayment"})
class ConfirmPayment(MethodView):
    @require_role(Role.OPERATOR)
    @idempotent
    @blp.arguments(PaymentConfirmSchema)
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> Any:
        """Confirm a received bank transfer (offline provider; Idempotency-Key)."""
        with unit_of_work() as session:
            return services.confirm_offline_payment(session, order_id=order_id,
                                                    actor=current_party(), **body)


@blp.route("/orders/<uuid:order_id>/deliver", operation_ids={"post": "deliverOrder"})
class DeliverOrder(MethodView):
    @require_role(Role.MERCHANT)
    @blp.arguments(DeliverySchema)
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> Any:
        """Record delivery (the order's merchant): an artifact, or a reference and checksum.

        With `artifact_id` (an artifact of the order's listing, else 422 `unknown_artifact`)
        the delivery is verified: the artifact's SHA-256, computed at upload, is the checksum,
        and a `checksum` sent too must equal it (else 422 `checksum_mismatch`, and nothing
        changes). With `delivery_ref` and `checksum` (data delivered outside the exchange)
        it is not: the order shows `verified_delivery: false`.
        """
        with unit_of_work() as session:
            return services.deliver_order(session, order_id=order_id, actor=current_party(),
                                          **body)


@blp.route("/orders/<uuid:order_id>/accept", operation_ids={"post": "acceptOrder"})
class AcceptOrder(MethodView):
    @require_role(Role.BUYER)
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, order_id: uuid.UUID) -> Any:
        """Accept the delivery (the order's buyer): the order completes."""
        with unit_of_work() as session:
            return services.accept_order(session, order_id=order_id, actor=current_party())


@blp.route("/orders/<uuid:order_id>/disputes", operation_ids={"post": "openDispute"})
class OrderDisputes(MethodView):
    @limit("RATE_LIMIT_DISPUTES")
    @require_role(Role.BUYER)
    @blp.arguments(DisputeCreateSchema)
    @blp.response(201, DisputeSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> Any:
        """Dispute a delivered order (its buyer)."""
        with unit_of_work() as session:
            return disputes.open_dispute(session, order_id=order_id, actor=current_party(),
                                         **body)


@blp.route("/disputes/<uuid:dispute_id>/resolve", operation_ids={"post": "resolveDispute"})
class ResolveDispute(MethodView):
    @require_role(Role.OPERATOR)
    @idempotent
    @blp.arguments(DisputeResolutionSchema)
    @blp.response(200, DisputeSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(502, response="BAD_GATEWAY")
    def post(self, body: dict[str, Any], dispute_id: uuid.UUID) -> Any:
        """Resolve a dispute: refund in full, in part, or reject (Idempotency-Key)."""
        with unit_of_work() as session:
            return disputes.resolve_dispute(session, dispute_id=dispute_id,
                                            actor=current_party(), **body)


@blp.route("/licenses/<uuid:license_id>/renew", tags=["licenses"],
           operation_ids={"post": "renewLicense"})
class RenewLicense(MethodView):
    @limit("RATE_LIMIT_TRADING")
    @require_role(Role.BUYER)
    @idempotent
    @blp.response(201, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, license_id: uuid.UUID) -> Any:
        """Renew a subscription (its buyer; Idempotency-Key): a new order at today's price.

        The order (`pending_payment`, its `license_id` the licence renewed) is for the same
        listing, quantity, purpose and beneficiaries, priced as the listing is now. Once it
        completes, the licence's `valid_until` moves on by one term from its current end.
        Only `active` or `expired` subscriptions with a term are renewed (409
        `not_renewable`, `invalid_transition`), one renewal at a time (409
        `renewal_in_progress`).
        """
        with unit_of_work() as session:
            return renewals.renew_license(session, license_id=license_id,
                                          buyer=current_party())


@blp.route("/webhooks/stripe", operation_ids={"post": "receiveStripeEvent"})
class StripeWebhook(MethodView):
    @blp.doc(security=[], parameters=[{
        "in": "header", "name": "Stripe-Signature", "required": True,
        "schema": {"type": "string"},
        "description": "Stripe's `t=...,v1=...` HMAC-SHA256 signature of the raw body"}],
        requestBody={"required": True, "description": "A Stripe event, as Stripe sends it",
                     "content": {"application/json": {"schema": {"type": "object"},
                                                      "example": STRIPE_EVENT_EXAMPLE}}})
    @blp.response(200, WebhookAckSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    def post(self) -> Any:
        """Stripe events (no API key: the signature is verified); each is processed once.

        `payment_intent.succeeded` pays the order when the intent's amount matches;
        `payment_intent.payment_failed` marks its payment failed (still payable until it
        expires); other events, repeated deliveries and signed bodies that hold no usable
        event are acknowledged and ignored. A bad signature is a 400.
        """
        with unit_of_work() as session:
            return webhooks.receive(session, request.get_data(cache=True),
                                    request.headers.get("Stripe-Signature"))


@blp.route("/listings/<uuid:listing_id>/quality-reports", tags=["listings"],
           operation_ids={"post": "reportQuality"})
class QualityReports(MethodView):
    @require_role(Role.BUYER)
    @blp.arguments(QualityReportCreateSchema)
    @blp.response(201, QualityReportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], listing_id: uuid.UUID) -> Any:
        """Report on a product's quality, score 1-5 (buyers with a completed order of it).

        No completed order → 403 `no_completed_order`; one report per buyer and listing
        (a second → 409 `quality_already_reported`); never on one's own listing.
        """
        with unit_of_work() as session:
            return services.report_quality(session, listing_id=listing_id,
                                           buyer=current_party(), **body)


@blp.route("/listings/<uuid:listing_id>/price-guidance", tags=["listings"],
           operation_ids={"get": "getPriceGuidance"})
class PriceGuidance(MethodView):
    @require_role()
    @blp.response(200, PriceGuidanceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, listing_id: uuid.UUID) -> Any:
        """The suggested unit price of a listing, with the band and the recent deals.

        The guide price's reference (else recent deals' median, else the listing's price)
        moved by named, bounded factors, each with its effect in fen, clamped into any
        binding band.
        """
        with unit_of_work() as session:
            return market.price_guidance(session, listing_id=listing_id,
                                         viewer=current_party())
