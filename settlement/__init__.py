"""Settlement: revenue sharing, settlement runs and payouts."""
