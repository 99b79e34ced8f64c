"""Learned user simulators, one package per model."""
