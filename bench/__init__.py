"""Benchmarks (`make bench`); nothing here is imported by the product."""
