"""Orders: purchase under a license frozen at purchase, payment, delivery, disputes, refunds."""
