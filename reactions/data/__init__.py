"""Bundled data: the default template set and building-block library (see README.md here)."""
