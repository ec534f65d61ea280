"""Generators of realistic synthetic data (transcripts, …) for tests, benchmarks and the demo."""
