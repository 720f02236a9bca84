"""Properties of the split of an order's money and of refund reversals (settlement.allocation),
pure functions of a frozen revenue plan. No database."""

from __future__ import annotations

import uuid
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from settlement import allocation
from settlement.allocation import PlanLine

PROPERTY = settings(max_examples=120, deadline=None)
TOTALS = st.integers(min_value=0, max_value=10**12)
MERCHANT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
ROLES = ["collector", "processor", "holder", "public_authority"]
BASES = ["contribution", "investment"]
# Weights as a listing stores them: JSON numbers, read back as floats.
WEIGHTS = st.one_of(st.integers(min_value=1, max_value=1000).map(float),
                    st.floats(min_value=0.01, max_value=1000, allow_nan=False,
                              allow_infinity=False).map(lambda w: round(w, 2)))


def party(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


# --- strategies ------------------------------------------------------------------------------

@st.composite
def plans(draw: st.DrawFn, *, with_contributors: bool | None = None) -> dict[str, Any]:
    """A revenue plan as orders freeze it: the platform fee, brokers whose commissions leave
    something to share (as listing validation demands), and contributors."""
    fee_bps = draw(st.integers(min_value=0, max_value=3000))
    room = 100 - fee_bps / 100  # per cent left after the fee
    brokers = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        left = room - sum(b["weight"] for b in brokers)
        if left <= 1:
            break
        weight = draw(st.floats(min_value=0.01, max_value=left - 0.5).map(lambda w: round(w, 2)))
        if weight > 0:
            brokers.append({"weight": weight})
    count = draw(st.integers(min_value=1 if with_contributors else 0,
                             max_value=0 if with_contributors is False else 5))
    contributors = [{"role": draw(st.sampled_from(ROLES)), "basis": draw(st.sampled_from(BASES)),
                     "weight": draw(WEIGHTS),
                     "invested_amount": draw(st.integers(min_value=0, max_value=10**9))}
                    for _ in range(count)]
    shares = [{"party_id": party(n), "role": "broker", "basis": "contribution", **b}
              for n, b in enumerate(brokers)]
    shares += [{"party_id": party(100 + n), **c} for n, c in enumerate(contributors)]
    shares = draw(st.permutations(shares))
    return {"listing_version": 1, "platform_fee_bps": fee_bps, "shares": list(shares)}


def lines_of(plan: dict[str, Any]) -> list[PlanLine]:
    return allocation.plan_lines(plan, MERCHANT)


@st.composite
def refund_sequences(draw: st.DrawFn, total: int) -> list[int]:
    """Partial refunds whose sum never exceeds the total."""
    refunds, left = [], total
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        if left == 0:
            break
        refund = draw(st.integers(min_value=1, max_value=left))
        refunds.append(refund)
        left -= refund
    return refunds


@st.composite
def partitions(draw: st.DrawFn, total: int) -> list[int]:
    """Refunds that add up to exactly the total (the last one takes what is left)."""
    refunds = draw(refund_sequences(total))
    left = total - sum(refunds)
    return [*refunds, left] if left else refunds


def apply_refunds(amounts: list[int], refunds: list[int]) -> list[list[int]]:
    """Reverse each refund from what the lines still hold, checking every reversal."""
    holding = list(amounts)
    taken_each = []
    for refund in refunds:
        taken = allocation.reversal(refund, holding)
        assert sum(taken) == refund
        assert all(t >= 0 for t in taken), (refunds, taken)
        assert all(t <= h for t, h in zip(taken, holding, strict=True)), (holding, taken)
        holding = [h - t for h, t in zip(holding, taken, strict=True)]
        taken_each.append(taken)
    return taken_each


# --- the split -------------------------------------------------------------------------------

@PROPERTY
@given(TOTALS, plans())
def test_the_shares_add_up_to_the_total_and_none_is_negative(total, plan):
    shares = allocation.split(total, lines_of(plan))

    assert sum(share.amount for share in shares) == total
    assert all(share.amount >= 0 for share in shares)


@PROPERTY
@given(TOTALS, plans())
@example(101, {"platform_fee_bps": 0, "shares": [
    {"party_id": party(n), "role": "collector", "basis": "contribution", "weight": w}
    for n, w in enumerate([9, 37, 55])]})
def test_each_share_is_its_exact_value_rounded_down_or_up(total, plan):
    lines = lines_of(plan)
    exact = allocation.exact_shares(total, lines)

    shares = allocation.split(total, lines)

    assert sum(exact) == total
    for share, value in zip(shares, exact, strict=True):
        assert abs(share.amount - value) < 1, (share, value)
        assert share.amount in (value.numerator // value.denominator,
                                -(-value.numerator // value.denominator))


@PROPERTY
@given(TOTALS, plans())
def test_the_same_plan_and_total_always_split_the_same_way(total, plan):
    first = allocation.split(total, lines_of(plan))
    again = allocation.split(total, lines_of(dict(plan, shares=[dict(s) for s in plan["shares"]])))

    assert first == again


@PROPERTY
@given(TOTALS, plans())
def test_the_platform_line_comes_first_with_its_fee_in_basis_points(total, plan):
    lines = lines_of(plan)

    shares = allocation.split(total, lines)

    assert (shares[0].party_id, shares[0].role, shares[0].basis) == (None, "platform", "fee")
    exact_fee = Fraction(total * plan["platform_fee_bps"], 10_000)
    assert abs(shares[0].amount - exact_fee) < 1
    assert all(share.party_id is not None for share in shares[1:])
    # Every plan line follows, in the plan's order.
    named = [uuid.UUID(s["party_id"]) for s in plan["shares"]]
    assert [share.party_id for share in shares[1:1 + len(named)]] == named


@PROPERTY
@given(TOTALS, plans())
def test_brokers_take_their_weight_as_a_percentage_of_the_total(total, plan):
    exact = allocation.exact_shares(total, lines_of(plan))

    for n, share in enumerate(plan["shares"], 1):
        if share["role"] == "broker":
            assert exact[n] == total * Fraction(str(share["weight"])) / 100


@PROPERTY
@given(TOTALS, plans(with_contributors=False))
def test_a_plan_without_contributors_pays_the_pool_to_the_merchant(total, plan):
    lines = lines_of(plan)
    exact = allocation.exact_shares(total, lines)

    shares = allocation.split(total, lines)

    last = shares[-1]
    assert (last.party_id, last.role, last.basis) == (MERCHANT, "holder", "contribution")
    brokers = sum((Fraction(str(s["weight"])) for s in plan["shares"]), Fraction(0))
    assert exact[-1] == total * (1 - Fraction(plan["platform_fee_bps"], 10_000) - brokers / 100)
    assert len(shares) == len(plan["shares"]) + 2


def test_an_empty_plan_gives_the_fee_to_the_platform_and_the_rest_to_the_merchant():
    shares = allocation.split(120_000, lines_of({"platform_fee_bps": 500, "shares": []}))

    assert [(s.party_id, s.role, s.amount) for s in shares] == [
        (None, "platform", 6_000), (MERCHANT, "holder", 114_000)]


def test_a_plan_naming_contributors_does_not_add_the_merchant():
    plan = {"platform_fee_bps": 500, "shares": [
        {"party_id": party(1), "role": "collector", "basis": "contribution", "weight": 1}]}

    shares = allocation.split(1_000, lines_of(plan))

    assert [(s.role, s.amount) for s in shares] == [("platform", 50), ("collector", 950)]
    assert MERCHANT not in {s.party_id for s in shares}


def test_investment_lines_share_their_part_by_invested_amount_and_contribution_by_weight():
    plan = {"platform_fee_bps": 500, "shares": [
        {"party_id": party(0), "role": "broker", "basis": "contribution", "weight": 2},
        {"party_id": party(1), "role": "holder", "basis": "investment", "weight": 1,
         "invested_amount": 300},
        {"party_id": party(2), "role": "processor", "basis": "investment", "weight": 3,
         "invested_amount": 100},
        {"party_id": party(3), "role": "collector", "basis": "contribution", "weight": 3},
        {"party_id": party(4), "role": "processor", "basis": "contribution", "weight": 1},
    ]}

    shares = allocation.split(120_000, lines_of(plan))

    # fee 5 % = 6000, broker 2 % = 2400, pool 111600: investment weight 4 of 8 (55800) split
    # 3:1 by invested amount (not 1:3 by weight); contribution 55800 split 3:1 by weight.
    assert [s.amount for s in shares] == [6_000, 2_400, 41_850, 13_950, 41_850, 13_950]


@PROPERTY
@given(st.integers(min_value=0, max_value=10**10),
       st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5),
       st.lists(WEIGHTS, min_size=0, max_size=3))
def test_investment_lines_are_proportional_to_invested_amounts(total, invested, contribution):
    shares = [{"party_id": party(n), "role": "holder", "basis": "investment", "weight": 1.0,
               "invested_amount": amount} for n, amount in enumerate(invested)]
    shares += [{"party_id": party(50 + n), "role": "collector", "basis": "contribution",
                "weight": w} for n, w in enumerate(contribution)]
    lines = lines_of({"platform_fee_bps": 0, "shares": shares})

    exact = allocation.exact_shares(total, lines)

    investment_part = sum(exact[1:1 + len(invested)])
    all_weight = len(invested) + sum(Fraction(str(w)) for w in contribution)
    assert investment_part == total * len(invested) / all_weight
    for n, amount in enumerate(invested):
        expected = (investment_part * amount / sum(invested) if sum(invested)
                    else investment_part / len(invested))  # by weight (all 1) without amounts
        assert exact[1 + n] == expected


def test_the_tie_break_gives_left_over_fen_to_the_earlier_line():
    plan = {"platform_fee_bps": 0, "shares": [
        {"party_id": party(n), "role": "collector", "basis": "contribution", "weight": 1}
        for n in range(3)]}

    assert [s.amount for s in allocation.split(2, lines_of(plan))] == [0, 1, 1, 0]
    assert [s.amount for s in allocation.split(100, lines_of(plan))] == [0, 34, 33, 33]


def test_largest_remainder_refuses_exact_values_that_do_not_add_up():
    with pytest.raises(ValueError):
        allocation.largest_remainder(10, [Fraction(3), Fraction(3)])


# --- reversals -------------------------------------------------------------------------------

TRAP = [0, 9, 37, 55]  # the platform's line (no fee), then weights 9 / 37 / 55 of 101 fen


def trap_amounts() -> list[int]:
    plan = {"platform_fee_bps": 0, "shares": [
        {"party_id": party(n), "role": "collector", "basis": "contribution", "weight": w}
        for n, w in enumerate([9, 37, 55])]}
    return [share.amount for share in allocation.split(101, lines_of(plan))]


def test_the_9_37_55_plan_splits_101_fen_exactly_by_weight():
    assert trap_amounts() == TRAP


def test_the_naive_difference_of_splits_would_give_a_payee_minus_one():
    """The trap the reversal rule avoids: split(29) - split(28) is negative for one payee."""
    lines = lines_of({"platform_fee_bps": 0, "shares": [
        {"party_id": party(n), "role": "collector", "basis": "contribution", "weight": w}
        for n, w in enumerate([9, 37, 55])]})
    at_28 = [s.amount for s in allocation.split(28, lines)]
    at_29 = [s.amount for s in allocation.split(29, lines)]

    assert at_28 == [0, 3, 10, 15] and at_29 == [0, 2, 11, 16]
    assert min(b - a for a, b in zip(at_28, at_29, strict=True)) == -1


@pytest.mark.parametrize("refunds", [[28, 1], [28, 1, 72], [1, 28], [29], [28, 1, 1, 1],
                                     [50, 50, 1], [1] * 101, [100, 1], [28, 73]])
def test_refunds_of_the_9_37_55_plan_never_reverse_a_negative_amount(refunds):
    taken = apply_refunds(trap_amounts(), refunds)

    assert all(t >= 0 for each in taken for t in each)
    reversed_total = [sum(each[i] for each in taken) for i in range(len(TRAP))]
    assert all(r <= a for r, a in zip(reversed_total, TRAP, strict=True))
    if sum(refunds) == 101:
        assert reversed_total == TRAP


def test_refund_of_28_then_1_from_the_9_37_55_plan():
    first, second = apply_refunds(trap_amounts(), [28, 1])

    assert first == [0, 3, 10, 15]
    assert second == [0, 0, 0, 1]


@PROPERTY
@given(st.data(), TOTALS.filter(bool), plans())
def test_any_partial_refunds_never_reverse_a_negative_amount_or_more_than_a_line_holds(
        data, total, plan):
    amounts = [s.amount for s in allocation.split(total, lines_of(plan))]
    refunds = data.draw(refund_sequences(total))

    taken = apply_refunds(amounts, refunds)

    for i, amount in enumerate(amounts):
        assert 0 <= sum(each[i] for each in taken) <= amount


@PROPERTY
@given(st.data(), TOTALS.filter(bool), plans())
def test_refunds_summing_to_the_total_net_every_line_to_zero(data, total, plan):
    amounts = [s.amount for s in allocation.split(total, lines_of(plan))]
    refunds = data.draw(partitions(total))

    taken = apply_refunds(amounts, refunds)

    assert [sum(each[i] for each in taken) for i in range(len(amounts))] == amounts


@PROPERTY
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8), st.data())
def test_a_reversal_is_proportional_to_what_each_line_still_holds(holding, data):
    refund = data.draw(st.integers(min_value=0, max_value=sum(holding)))

    taken = allocation.reversal(refund, holding)

    assert sum(taken) == refund
    for t, h in zip(taken, holding, strict=True):
        assert 0 <= t <= h
        if sum(holding):
            assert abs(t - Fraction(refund * h, sum(holding))) < 1


@pytest.mark.parametrize("refund, holding", [(11, [5, 5]), (1, [0, 0]), (-1, [5, 5])])
def test_a_reversal_beyond_what_the_lines_hold_or_negative_is_refused(refund, holding):
    with pytest.raises(ValueError):
        allocation.reversal(refund, holding)
