"""Oversight: what regulators and the public see of the whole exchange (public pages first).
It reads every domain; nothing imports it."""
