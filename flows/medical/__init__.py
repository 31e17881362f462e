"""Treat first, pay later: the enrolment, settlement, reconciliation,
collections and hold-expiry flows."""
