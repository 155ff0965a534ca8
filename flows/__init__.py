"""Prefect flows of the lamops pipeline."""
