"""Licences: what each order grants, enforced after the sale (term, scope, calls, tokens)."""
