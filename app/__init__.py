"""The service: FastAPI API, database, background worker, command line, web pages."""
