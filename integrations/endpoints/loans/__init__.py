"""The credit-easy loans endpoints (CONTRACT.md §4)."""
