"""Evaluation of Large Action Models: planning, offline decision making and online metrics."""
