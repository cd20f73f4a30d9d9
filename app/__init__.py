"""Distillery: the service side. Never imports torch or `worker`."""
