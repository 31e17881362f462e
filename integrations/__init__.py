"""The doors: the endpoints partners call, and clients for partner systems."""
