"""Splitting an order's money exactly (谁投入、谁贡献、谁受益), and reversing it for refunds.

The split of a total, from a revenue-share plan frozen on the order:
1. off the top (提成): the platform fee, `platform_fee_bps` of the total, and each broker's
   commission, its `weight` as a percentage of the total (scaled down in proportion if a
   fee raised since the plan was checked leaves less than the commissions);
2. the rest (the pool) goes to the contributors (every line that is not a broker's), in two
   parts, in proportion to the sum of the weights of each basis: the `contribution` lines
   share theirs by weight (谁贡献); the `investment` lines share theirs by `invested_amount`
   (谁投入), or by weight when none of them states an amount;
3. a plan without contributors pays the pool to the merchant, the default payee.
The exact (rational) shares are rounded by the largest-remainder method: everyone gets the
whole fen of their exact share, and the fen left over go one each to the largest fractional
parts, ties broken by line order (platform first, then the plan's order). The shares sum to
the total exactly and each is within one fen of its exact value.

Reversals: a refund of r is taken from each line in proportion to what it still holds
(credited less already reversed), by the same largest-remainder rounding, and never more
than it holds. No line ever gets a negative reversal, and refunds summing to the total
take back everything, so a full refund nets every payee to zero.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

PLATFORM = "platform"
BROKER = "broker"
MERCHANT_DEFAULT = "holder"


@dataclass(frozen=True)
class PlanLine:
    party_id: uuid.UUID | None  # None: the platform
    role: str
    basis: str
    weight: Fraction
    invested_amount: int = 0


@dataclass(frozen=True)
class Share:
    party_id: uuid.UUID | None
    role: str
    basis: str
    amount: int


def largest_remainder(total: int, exact: Sequence[Fraction]) -> list[int]:
    """Integers summing to `total`, each the floor or ceiling of its exact value (the exact
    values sum to `total`); leftover units go to the largest fractions, first line first."""
    if sum(exact) != total:
        raise ValueError("the exact shares must sum to the total")
    floors = [value.numerator // value.denominator for value in exact]
    left = total - sum(floors)
    by_fraction = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_fraction[:left]:
        floors[i] += 1
    return floors


def plan_lines(plan: dict, merchant_id: uuid.UUID) -> list[PlanLine]:
    """The platform's line, then the plan's, from the plan frozen on an order."""
    lines = [PlanLine(None, PLATFORM, "fee", Fraction(plan.get("platform_fee_bps", 0), 10_000))]
    shares = plan.get("shares") or []
    for share in shares:
        lines.append(PlanLine(uuid.UUID(str(share["party_id"])), share["role"], share["basis"],
                              Fraction(str(share["weight"])),
                              int(share.get("invested_amount") or 0)))
    if not any(line.role != BROKER for line in lines[1:]):
        lines.append(PlanLine(merchant_id, MERCHANT_DEFAULT, "contribution", Fraction(1)))
    return lines


def exact_shares(total: int, lines: Sequence[PlanLine]) -> list[Fraction]:
    """Each line's exact (rational) part of the total, as the module describes."""
    exact = [Fraction(0)] * len(lines)
    exact[0] = min(total * lines[0].weight, Fraction(total))  # the platform fee
    brokers = [i for i, line in enumerate(lines[1:], 1) if line.role == BROKER]
    commissions = sum((lines[i].weight for i in brokers), Fraction(0)) / 100
    # Commissions fixed when the plan was checked may meet a fee raised since: they then
    # share what the fee leaves, in proportion, and nobody's part is ever negative.
    scale = min(Fraction(1), (1 - exact[0] / total) / commissions) if total and commissions \
        else Fraction(1)
    for i in brokers:
        exact[i] = total * lines[i].weight / 100 * scale
    pool = total - sum(exact)
    contributors = [i for i, line in enumerate(lines[1:], 1) if line.role != BROKER]
    weight_of = {basis: sum((lines[i].weight for i in contributors if lines[i].basis == basis),
                            Fraction(0)) for basis in ("investment", "contribution")}
    all_weight = sum(weight_of.values())
    invested = sum(lines[i].invested_amount for i in contributors
                   if lines[i].basis == "investment")
    for i in contributors:
        line = lines[i]
        part = pool * weight_of[line.basis] / all_weight
        if line.basis == "investment" and invested:
            exact[i] = part * line.invested_amount / invested
        else:
            exact[i] = part * line.weight / weight_of[line.basis]
    return exact


def split(total: int, lines: Sequence[PlanLine]) -> list[Share]:
    """The order's total split exactly among the lines (platform first)."""
    amounts = largest_remainder(total, exact_shares(total, lines))
    return [Share(line.party_id, line.role, line.basis, amount)
            for line, amount in zip(lines, amounts, strict=True)]


def reversal(refund: int, holding: Sequence[int]) -> list[int]:
    """How much of a refund each line gives back, in proportion to what it still holds."""
    held = sum(holding)
    if not 0 <= refund <= held:
        raise ValueError(f"a refund of {refund} exceeds the {held} still allocated")
    if refund == 0:
        return [0] * len(holding)
    return largest_remainder(refund, [Fraction(refund * h, held) for h in holding])
