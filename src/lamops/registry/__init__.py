"""The MLflow model registry: logging, registering, loading and aliasing trained models."""
