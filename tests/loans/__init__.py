"""The credit-easy loans programme (CONTRACT.md §4): its pure rules."""
