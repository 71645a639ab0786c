"""Thin DVC stage entry points; run as `python -m stages.NAME` from the repository root."""
