"""Properties of the suggested price (listings.guidance.suggest), a pure function of the market
facts: the binding band holds it, its factors add up, every factor is monotone in its input,
and the same facts give the same suggestion. No database."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from listings.guidance import Band, MarketFacts, suggest
from listings.models import DeliveryMode, QualitySummary, Rating, Territory

PROPERTY = settings(max_examples=200, deadline=None)
PRICES = st.integers(min_value=1, max_value=10**11)
RATING_LADDER = [Rating.C, Rating.B, Rating.A, Rating.AA, Rating.AAA]  # worst to best
DELIVERY_LADDER = [DeliveryMode.SANDBOX, DeliveryMode.API, DeliveryMode.DOWNLOAD]
TERMS = st.none() | st.integers(min_value=1, max_value=36_500)  # None: perpetual


# --- strategies ------------------------------------------------------------------------------

@st.composite
def guides(draw: st.DrawFn, binding: bool | None = None) -> tuple[int, Band]:
    """A guide price's reference and band, as listings.models.GuidePrice computes them."""
    reference = draw(PRICES)
    floor_pct = draw(st.integers(min_value=0, max_value=100))
    ceiling_pct = draw(st.integers(min_value=0, max_value=1000))
    band = Band(floor_price=-(-reference * (100 - floor_pct) // 100),
                ceiling_price=reference * (100 + ceiling_pct) // 100,
                binding=draw(st.booleans()) if binding is None else binding)
    return reference, band


@st.composite
def qualities(draw: st.DrawFn) -> QualitySummary:
    """What the buyers' reports (scores 1-5) add up to, as a listing summarizes them."""
    count = draw(st.integers(min_value=0, max_value=10_000))
    total = draw(st.integers(min_value=count, max_value=5 * count))
    return QualitySummary.of(count, total)


@st.composite
def market_facts(draw: st.DrawFn, *, binding: bool | None = None,
                 with_guide: bool | None = None, with_deals: bool | None = None,
                 with_reports: bool | None = None) -> MarketFacts:
    """Any facts price_guidance could gather; the keywords pin a guide (binding or not),
    recent deals or quality reports on or off."""
    has_guide = draw(st.booleans()) if with_guide is None else with_guide
    reference, band = draw(guides(binding)) if has_guide else (None, None)
    quality = draw(qualities())
    if with_reports is not None:
        quality = draw(qualities().filter(lambda q: bool(q.count) == with_reports))
    has_deals = draw(st.booleans()) if with_deals is None else with_deals
    deal_count = draw(st.integers(min_value=1, max_value=200)) if has_deals else 0
    return MarketFacts(
        unit_price=draw(st.integers(min_value=0, max_value=10**11)),
        reference_price=reference,
        band=band,
        rating=draw(st.none() | st.sampled_from(Rating)),
        quality_count=quality.count,
        quality_average=quality.average,
        open_demands=draw(st.integers(min_value=0, max_value=100_000)),
        listed_supply=draw(st.integers(min_value=0, max_value=100_000)),
        licenses_available=draw(st.none() | st.integers(min_value=0, max_value=10**9)),
        resale=draw(st.booleans()),
        derivatives=draw(st.booleans()),
        term_days=draw(TERMS),
        territory=draw(st.sampled_from(Territory)),
        delivery_mode=draw(st.sampled_from(DeliveryMode)),
        deal_count=deal_count,
        deal_median=draw(PRICES) if deal_count else None,
    )


def ordered_pair(values: st.SearchStrategy[Any], key: Any = None) -> st.SearchStrategy[Any]:
    """Two values, the worse (lower) first."""
    return st.tuples(values, values).map(lambda pair: tuple(sorted(pair, key=key)))


def suggested(facts: MarketFacts, **changes: Any) -> int:
    return suggest(dataclasses.replace(facts, **changes)).suggested_price


def effects(facts: MarketFacts) -> dict[str, int]:
    return {f.name: f.effect for f in suggest(facts).factors}


# --- the band and the sum --------------------------------------------------------------------

@PROPERTY
@given(market_facts(binding=True, with_guide=True))
def test_with_a_binding_band_the_suggestion_is_always_inside_it(facts):
    guidance = suggest(facts)

    assert facts.band.floor_price <= guidance.suggested_price <= facts.band.ceiling_price


@PROPERTY
@given(market_facts(binding=False, with_guide=True))
def test_a_non_binding_band_neither_clamps_nor_adds_a_band_effect(facts):
    assert effects(facts)["band"] == 0


@PROPERTY
@given(market_facts())
def test_the_basis_plus_every_effect_is_the_suggested_price(facts):
    guidance = suggest(facts)

    assert guidance.reference_price + sum(f.effect for f in guidance.factors) \
        == guidance.suggested_price


@PROPERTY
@given(market_facts())
def test_the_basis_is_the_guide_price_else_the_deals_median_else_the_listing_price(facts):
    guidance = suggest(facts)

    if facts.reference_price is not None:
        expected = ("guide_price", facts.reference_price)
    elif facts.deal_median is not None:
        expected = ("recent_deals", facts.deal_median)
    else:
        expected = ("listing_price", facts.unit_price)
    assert (guidance.basis, guidance.reference_price) == expected
    if guidance.basis == "recent_deals":
        assert effects(facts)["recent_deals"] == 0


@PROPERTY
@given(market_facts())
def test_each_factor_stays_within_its_documented_bounds(facts):
    basis = suggest(facts).reference_price
    found = effects(facts)

    def within(name: str, low_bps: int, high_bps: int) -> bool:
        # a share of the basis, rounded to the fen
        return basis * low_bps / 10_000 - 1 <= found[name] <= basis * high_bps / 10_000 + 1

    assert within("certification", -500, 1000)
    assert within("quality_reports", -500, 500)
    assert within("scarcity", -1000, 1000)
    assert within("exclusivity", 0, 1500)
    assert within("resale", 0, 1000)
    assert within("derivatives", 0, 500)
    assert within("term", -1000, 500)
    assert within("territory", 0, 500)
    assert within("delivery_mode", -300, 300)
    assert within("recent_deals", -2000, 2000)


@PROPERTY
@given(market_facts(binding=False))
def test_without_clamping_the_suggestion_never_falls_below_zero(facts):
    # The negative shares add up to at most -53 % of the basis.
    assert suggest(facts).suggested_price >= 0


# --- monotone: a better input never lowers the suggestion ------------------------------------

@PROPERTY
@given(market_facts(), ordered_pair(st.sampled_from(RATING_LADDER), key=RATING_LADDER.index))
def test_a_better_certification_never_lowers_the_suggestion(facts, ratings):
    worse, better = ratings

    assert suggested(facts, rating=better) >= suggested(facts, rating=worse)


@PROPERTY
@given(market_facts(with_reports=True), ordered_pair(st.integers(min_value=100, max_value=500)))
def test_a_higher_quality_average_never_lowers_the_suggestion(facts, averages):
    worse, better = (hundredths / 100 for hundredths in averages)

    assert suggested(facts, quality_average=better) >= suggested(facts, quality_average=worse)


@PROPERTY
@given(market_facts(), ordered_pair(st.integers(min_value=0, max_value=100_000)))
def test_more_open_demands_never_lower_the_suggestion(facts, demands):
    fewer, more = demands

    assert suggested(facts, open_demands=more) >= suggested(facts, open_demands=fewer)


@PROPERTY
@given(market_facts(), ordered_pair(st.integers(min_value=0, max_value=100_000)))
def test_less_listed_supply_never_lowers_the_suggestion(facts, supplies):
    less, more = supplies

    assert suggested(facts, listed_supply=less) >= suggested(facts, listed_supply=more)


@PROPERTY
@given(market_facts(), st.none() | st.integers(min_value=0, max_value=10**9))
def test_a_single_license_never_suggests_less_than_any_other_number(facts, licenses):
    assert suggested(facts, licenses_available=1) >= suggested(facts,
                                                               licenses_available=licenses)


@PROPERTY
@given(market_facts())
def test_allowing_resale_or_derivatives_never_lowers_the_suggestion(facts):
    assert suggested(facts, resale=True) >= suggested(facts, resale=False)
    assert suggested(facts, derivatives=True) >= suggested(facts, derivatives=False)


@PROPERTY
@given(market_facts(), ordered_pair(TERMS, key=lambda days: float("inf") if days is None
                                    else days))
def test_a_longer_term_never_lowers_the_suggestion_and_perpetual_is_longest(facts, terms):
    shorter, longer = terms

    assert suggested(facts, term_days=longer) >= suggested(facts, term_days=shorter)
    assert suggested(facts, term_days=None) >= suggested(facts, term_days=shorter)


@PROPERTY
@given(market_facts())
def test_cross_border_use_never_suggests_less_than_domestic(facts):
    assert suggested(facts, territory=Territory.CROSS_BORDER) \
        >= suggested(facts, territory=Territory.DOMESTIC)


@PROPERTY
@given(market_facts(),
       ordered_pair(st.sampled_from(DELIVERY_LADDER), key=DELIVERY_LADDER.index))
def test_download_then_api_then_sandbox_is_the_order_of_the_suggestion(facts, modes):
    worse, better = modes

    assert suggested(facts, delivery_mode=better) >= suggested(facts, delivery_mode=worse)


@PROPERTY
@given(market_facts(with_guide=True, with_deals=True), ordered_pair(PRICES))
def test_a_higher_deals_median_never_lowers_the_suggestion_from_a_guide_price(facts, medians):
    lower, higher = medians

    assert suggested(facts, deal_median=higher) >= suggested(facts, deal_median=lower)


@PROPERTY
@given(market_facts(with_guide=False, with_deals=True), ordered_pair(PRICES))
def test_a_higher_deals_median_never_lowers_the_suggestion_it_is_the_basis_of(facts, medians):
    lower, higher = medians

    assert suggested(facts, deal_median=higher) >= suggested(facts, deal_median=lower)


# Shares rounded one by one lost a fen each here: 650 suggested 632, 651 suggested 631.
ROUNDING_DIP = MarketFacts(
    unit_price=0, reference_price=None, band=None, rating=None, quality_count=1,
    quality_average=1.0, open_demands=0, listed_supply=0, licenses_available=None, resale=False,
    derivatives=False, term_days=None, territory=Territory.DOMESTIC,
    delivery_mode=DeliveryMode.SANDBOX, deal_count=1, deal_median=1)


@PROPERTY
@given(market_facts(with_guide=False, with_deals=True), PRICES)
@example(ROUNDING_DIP, 650)
def test_a_deals_median_one_fen_higher_never_lowers_the_suggestion(facts, median):
    assert suggested(facts, deal_median=median + 1) >= suggested(facts, deal_median=median)


# --- deterministic -----------------------------------------------------------------------------

@PROPERTY
@given(market_facts())
def test_the_same_facts_always_give_the_same_suggestion(facts):
    copy = dataclasses.replace(facts)

    assert suggest(facts) == suggest(copy) == suggest(facts)
