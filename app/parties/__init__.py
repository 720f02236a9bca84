"""Parties (market participants), their roles and API keys."""
