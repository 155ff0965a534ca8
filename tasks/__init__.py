"""Prefect tasks wrapping the stages of lamops.stages."""
