"""HTTP routes of settlement and the ledger reports."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, send_file
from flask.views import MethodView

from app import clock, ledger
from app.api import Blueprint, SQLPage, SQLRowPage
from app.db import unit_of_work
from app.idempotency import idempotent, idempotent_own_transactions
from app.parties.auth import current_party, require_role
from app.parties.models import Role
from settlement import payouts, runs, views
from settlement.schemas import (
    AllocationSchema,
    BalanceSchema,
    BatchConfirmationSchema,
    PayoutAccountBodySchema,
    PayoutAccountSchema,
    PayoutBatchSchema,
    PayoutQueryArgsSchema,
    PayoutSchema,
    RunCreateSchema,
    RunSchema,
    StatementArgsSchema,
    StatementLineSchema,
    TrialBalanceSchema,
)

blp = Blueprint("settlement", __name__, url_prefix="/api/v1",
                description="Settlement: revenue sharing, runs, balances and the ledger")


@blp.route("/settlement/runs", operation_ids={"post": "runSettlement", "get": "listSettlementRuns"})
class Runs(MethodView):
    @require_role(Role.OPERATOR)
    @idempotent_own_transactions  # batches commit one by one, not in the key's transaction
    @blp.arguments(RunCreateSchema, required=False)
    @blp.response(201, RunSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Settle every completed, unsettled order up to `up_to` (Idempotency-Key).

        One run per cut-off: the same `up_to` again finishes and returns that run. One run
        at a time: this one waits for a run in progress (SETTLEMENT_RUN_WAIT_SECONDS), then
        answers 409 `settlement_run_in_progress`.
        """
        return runs.settle(up_to=body["up_to"] or clock.now(), actor=current_party(),
                           wait_seconds=current_app.config["SETTLEMENT_RUN_WAIT_SECONDS"])

    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, RunSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self) -> Any:
        """Settlement runs, newest first."""
        return views.runs_query()


@blp.route("/settlement/runs/<uuid:run_id>", operation_ids={"get": "getSettlementRun"})
class RunDetail(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, RunSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, run_id: uuid.UUID) -> Any:
        """A settlement run with its totals."""
        with unit_of_work() as session:
            return views.get_run(session, run_id)


@blp.route("/orders/<uuid:order_id>/allocations", operation_ids={"get": "listAllocations"})
class Allocations(MethodView):
    @require_role()
    @blp.response(200, AllocationSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, order_id: uuid.UUID) -> Any:
        """How a settled order's money was split, the platform's line included.

        The lines sum to the order total: all lines for the order's merchant, operators and
        regulators; a payee's own lines for a payee.
        """
        with unit_of_work() as session:
            return views.allocations(session, order_id=order_id, viewer=current_party())


@blp.route("/parties/<uuid:party_id>/balance", operation_ids={"get": "getBalance"})
class PartyBalance(MethodView):
    @require_role()
    @blp.response(200, BalanceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, party_id: uuid.UUID) -> Any:
        """A payee's balance (itself, operators, regulators)."""
        with unit_of_work() as session:
            return views.balance(session, party_id=party_id, viewer=current_party())


@blp.route("/parties/<uuid:party_id>/statement", operation_ids={"get": "getStatement"})
class PartyStatement(MethodView):
    @require_role()
    @blp.arguments(StatementArgsSchema, location="query")
    @blp.response(200, StatementLineSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(SQLRowPage)
    def get(self, args: dict[str, Any], party_id: uuid.UUID) -> Any:
        """The ledger lines of a party's accounts, oldest first; `?from=&to=`."""
        return views.statement(party_id=party_id, viewer=current_party(),
                               start=args.get("from_"), end=args.get("to"))


@blp.route("/ledger/trial-balance", operation_ids={"get": "getTrialBalance"})
class TrialBalance(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, TrialBalanceSchema)
    def get(self) -> Any:
        """Debits against credits, and each account's cached balance against its entries."""
        with unit_of_work() as session:
            return ledger.trial_balance(session)


@blp.route("/parties/<uuid:party_id>/payout-account",
           operation_ids={"put": "setPayoutAccount", "get": "getPayoutAccount"})
class PartyPayoutAccount(MethodView):
    @require_role()
    @blp.arguments(PayoutAccountBodySchema)
    @blp.response(200, PayoutAccountSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def put(self, body: dict[str, Any], party_id: uuid.UUID) -> Any:
        """Where the party is paid (the party itself only).

        A bank account, listed in the operator's batch file, or a Stripe connected account.
        """
        with unit_of_work() as session:
            return payouts.set_payout_account(session, party_id=party_id,
                                              actor=current_party(), body=body)

    @require_role()
    @blp.response(200, PayoutAccountSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, party_id: uuid.UUID) -> Any:
        """The party's payout account (itself, operators, regulators)."""
        with unit_of_work() as session:
            return payouts.get_payout_account(session, party_id=party_id,
                                              viewer=current_party())


@blp.route("/payouts", operation_ids={"get": "listPayouts"})
class Payouts(MethodView):
    @require_role()
    @blp.arguments(PayoutQueryArgsSchema, location="query")
    @blp.response(200, PayoutSchema(many=True))
    @blp.paginate(SQLPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Payouts with their provider reference and status.

        Your own, or all for operators and regulators; `?party_id=&run_id=&status=`.
        """
        return payouts.payouts_query(viewer=current_party(), **args)


@blp.route("/payout-batches/<uuid:batch_id>", operation_ids={"get": "getPayoutBatch"})
class PayoutBatchDetail(MethodView):
    @require_role(Role.OPERATOR, Role.REGULATOR)
    @blp.response(200, PayoutBatchSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, batch_id: uuid.UUID) -> Any:
        """A run's payouts by one method."""
        with unit_of_work() as session:
            return payouts.get_batch(session, batch_id)


@blp.route("/payout-batches/<uuid:batch_id>/file", operation_ids={"get": "getPayoutBatchFile"})
class PayoutBatchFile(MethodView):
    @require_role(Role.OPERATOR)
    @blp.response(200, {"type": "string"}, content_type="text/csv")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, batch_id: uuid.UUID) -> Any:
        """The bank_file batch as CSV.

        Columns: payout id, payee name, credit code, bank, account, amount in fen, currency.
        """
        with unit_of_work() as session:
            batch = payouts.get_batch(session, batch_id)
            if batch.file_path is None:
                raise payouts.BatchNotFound("This batch has no file.")
            return send_file(batch.file_path, mimetype="text/csv", as_attachment=True,
                             download_name=f"payouts-{batch.run_id}.csv")


@blp.route("/payout-batches/<uuid:batch_id>/confirm", operation_ids={"post": "confirmPayoutBatch"})
class ConfirmPayoutBatch(MethodView):
    @require_role(Role.OPERATOR)
    @idempotent
    @blp.arguments(BatchConfirmationSchema, required=False)
    @blp.response(200, PayoutBatchSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], batch_id: uuid.UUID) -> Any:
        """The bank paid the batch file (Idempotency-Key).

        Its payouts are paid, except those named in `failed`, whose money goes back to the
        payee's payable balance.
        """
        with unit_of_work() as session:
            return payouts.confirm_bank_batch(session, batch_id=batch_id,
                                              actor=current_party(), failed=body["failed"])
