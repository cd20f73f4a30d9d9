"""Uploaded files: the /v1/files service, the checks that run on each upload, and the checks a
job that names files must pass."""
