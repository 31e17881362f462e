"""The neighbours: stand-ins for the partner systems the hub talks to.

Each simulator is another organisation's system (the city's public credit
database, a bank) served as its own HTTP server on loopback. They import
nothing from the hub and share no storage with it: the hub reaches them over
HTTP only, exactly as it would reach the real systems.
"""
