"""Agents: learning recommenders that expose the recgym Policy protocol."""
