"""lamops: train Large Action Models (arXiv 2412.10047) as a reproducible MLOps pipeline."""

__version__ = "0.1.0"
