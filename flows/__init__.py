"""The clock and the orchestra: Prefect flows joining the hub's use cases with
the partner systems. Thin: no SQL and no business rules here."""
