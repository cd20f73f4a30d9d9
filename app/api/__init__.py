"""The HTTP API's routers, one module per resource (jobs, files, catalog, health, events, poll,
dashboard), and their shared dependencies (deps)."""
