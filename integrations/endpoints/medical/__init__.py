"""Treat first, pay later (CONTRACT.md §2): enrolment, credit lines, visits and
holds, repayments, settlement and reconciliation endpoints."""
