"""Credit-easy loans for small firms (CONTRACT.md §4): products, applications
under a firm's consent, the "usable but not visible" profile, matching and
deadlines, offers, loans (schedule and allocation), delinquency, the
risk-compensation fund and interest subsidies. Built on `hub.core`.
"""
