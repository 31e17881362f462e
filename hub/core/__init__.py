"""The shared core both programmes stand on: the ledger, events to partners,
idempotency, consent and the audit of credit-database use, partners and their
references, ids, the clock, errors, personal data, settings and the database.

Nothing here knows a programme's rules; `hub.medical` and `hub.loans` build on it.
"""
