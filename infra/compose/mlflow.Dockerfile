# The MLflow tracking server of infra/compose: MLflow plus the PostgreSQL driver (backend and registry store)
# and boto3 (S3 artifact destination). The version matches the clients' (pyproject: mlflow>=3.17,<4).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ARG MLFLOW_VERSION=3.17.2
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    MLFLOW_ENABLE_TELEMETRY=false DO_NOT_TRACK=1
RUN pip install "mlflow==${MLFLOW_VERSION}" psycopg2-binary boto3 \
 && useradd --create-home --uid 1000 mlflow
USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--help"]
