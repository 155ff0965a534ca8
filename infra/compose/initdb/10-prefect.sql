-- Run once by the postgres image on an empty data volume: the Prefect server's database, beside MLflow's
-- (POSTGRES_DB=mlflow), owned by the same user.
CREATE DATABASE prefect;
