"""Request and response shapes of settlement and the ledger reports."""

from __future__ import annotations

from marshmallow import fields, validate

from app.api import Currency, FullMatch, ResponseSchema, Schema
from listings.models import ShareBasis, ShareRole
from settlement.allocation import PLATFORM
from settlement.models import PayoutMethod, PayoutStatus, RunStatus


class RunCreateSchema(Schema):
    example = {"up_to": "2026-06-30T23:59:59+08:00"}

    up_to = fields.AwareDateTime(load_default=None, metadata={
        "description": "Settle orders completed up to this instant (default: now)"})


class RunSchema(ResponseSchema):
    id = fields.UUID()
    up_to = fields.DateTime()
    status = fields.Enum(RunStatus, by_value=True)
    orders_settled = fields.Integer()
    gross_amount = fields.Integer()
    platform_fee_amount = fields.Integer()
    payout_amount = fields.Integer(metadata={"description": "Allocated to payees"})
    refunds_reversed = fields.Integer()
    currency = Currency()
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class AllocationSchema(ResponseSchema):
    party_id = fields.UUID(allow_none=True, metadata={"description": "null for the platform"})
    role = fields.String(
        validate=validate.OneOf([PLATFORM, *(role.value for role in ShareRole)]),
        metadata={"description": "platform for the exchange's fee, else the payee's share role"})
    basis = fields.String(  # fee: the platform's line
        validate=validate.OneOf(["fee", *(basis.value for basis in ShareBasis)]))
    amount = fields.Integer()
    reversed_amount = fields.Integer()
    net_amount = fields.Integer()


class BalanceSchema(ResponseSchema):
    party_id = fields.UUID()
    currency = Currency()
    available_amount = fields.Integer(metadata={
        "description": "Payable now, less what the party owes back after refunds"})
    pending_amount = fields.Integer(metadata={"description": "In payouts under way"})
    clawback_amount = fields.Integer(metadata={"description": "Owed back, netted next"})


class StatementArgsSchema(Schema):
    from_ = fields.AwareDateTime(data_key="from")
    to = fields.AwareDateTime()


class StatementLineSchema(ResponseSchema):
    posted_at = fields.DateTime()
    account = fields.String()
    amount = fields.Integer(metadata={"description": "Positive into the account, negative out"})
    transaction_key = fields.String()
    kind = fields.String()
    description = fields.String()


class AccountBalanceSchema(ResponseSchema):
    code = fields.String()
    kind = fields.String()
    party_id = fields.UUID(allow_none=True)
    balance = fields.Integer()
    entries_balance = fields.Integer()


class TrialBalanceSchema(ResponseSchema):
    balanced = fields.Boolean()
    total_debits = fields.Integer()
    total_credits = fields.Integer()
    accounts = fields.List(fields.Nested(AccountBalanceSchema))
    mismatched_accounts = fields.List(fields.String())
    unbalanced_transactions = fields.List(fields.String())


class PayoutAccountBodySchema(Schema):
    example = {"method": "bank_file", "bank_name": "中国工商银行上海浦东分行 ICBC Shanghai Pudong",
               "account_name": "上海智行交通数据有限公司 Shanghai Zhixing Traffic Data Co., Ltd.",
               "account_number": "1001 2345 6789 0123 456", "stripe_account_id": None}

    method = fields.Enum(PayoutMethod, by_value=True, required=True)
    bank_name = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(min=1, max=200))
    account_name = fields.String(load_default=None, allow_none=True,
                                 validate=validate.Length(min=1, max=200))
    account_number = fields.String(load_default=None, allow_none=True,
                                   validate=FullMatch(r"^[0-9A-Za-z -]{4,64}$"))
    stripe_account_id = fields.String(load_default=None, allow_none=True,
                                      validate=FullMatch(r"^acct_[0-9A-Za-z]{1,64}$"))


class PayoutAccountSchema(PayoutAccountBodySchema, ResponseSchema):
    party_id = fields.UUID(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class PayoutSchema(ResponseSchema):
    id = fields.UUID()
    run_id = fields.UUID()
    batch_id = fields.UUID()
    party_id = fields.UUID()
    method = fields.Enum(PayoutMethod, by_value=True)
    amount = fields.Integer()
    currency = Currency()
    status = fields.Enum(PayoutStatus, by_value=True)
    reference = fields.String(allow_none=True, metadata={
        "description": "Stripe transfer id, or the bank batch"})
    failure_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class PayoutQueryArgsSchema(Schema):
    party_id = fields.UUID()
    run_id = fields.UUID()
    status = fields.Enum(PayoutStatus, by_value=True)


class PayoutBatchSchema(ResponseSchema):
    id = fields.UUID()
    run_id = fields.UUID()
    method = fields.Enum(PayoutMethod, by_value=True)
    file_available = fields.Function(lambda batch: batch.file_path is not None,
                                     metadata={"type": "boolean"})
    confirmed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class RefusedPayoutSchema(Schema):
    payout_id = fields.UUID(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class BatchConfirmationSchema(Schema):
    example = {"failed": [{"payout_id": "0d9e4c2a-7b1f-4e38-a5d6-93c2f1e8b047",
                           "reason": "收款账户已销户 The payee's account is closed."}]}

    failed = fields.List(fields.Nested(RefusedPayoutSchema), load_default=list,
                         metadata={"description": "Payouts the bank refused; the rest are paid"})
