"""Agents that act in an environment: the built-in expert (and, later, the LAM agent)."""
