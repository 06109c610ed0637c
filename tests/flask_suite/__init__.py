"""Runs Flask's own test suite with and without wsgimon to show the middleware is transparent."""
