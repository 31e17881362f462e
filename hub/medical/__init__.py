"""Treat first, pay later (CONTRACT.md §2): residents' credit lines, holds
against them at the hospital, visits closed with the final bill, debts and
repayments, enrolment, settlement windows and settlement, reconciliation and
collections.
"""
