"""What the listings domain tells others without knowing them (blinker signals)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent with the session, inside the transaction that put the listing on the market
# (`listing=`); receivers work in that transaction and must not fail it.
listing_listed = _signals.signal("listing-listed")
