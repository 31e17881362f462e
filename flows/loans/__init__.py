"""The credit-easy loans flows (CONTRACT.md §4)."""
