"""Trading credit (交易信用): events, scores, penalties, blacklist, objections and repair."""
