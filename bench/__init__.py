"""Benchmarks: what wsgimon costs compared with the bare application."""
