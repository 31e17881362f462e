"""The shared core's nouns: partners, ledger, idempotency, consent, audit, events."""
