"""Faults injected into real processes: the broker, the database, the workers, the API."""
