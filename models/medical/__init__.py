"""Treat first, pay later: the medical-credit programme's nouns."""
