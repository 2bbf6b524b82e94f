# syntax=docker/dockerfile:1
# Multi-stage build of the synflow service. CPU torch by default; for CUDA:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 -t synflow:cuda .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml README.md ./
COPY synflow ./synflow
COPY reactions ./reactions
COPY models ./models
COPY app ./app
# torch first from the chosen index (CPU or CUDA wheels), then the project and its other dependencies.
RUN pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple torch \
 && pip install .

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libxrender1 libxext6 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 synflow \
 && mkdir -p /data && chown synflow:synflow /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/synflow
# Alembic's scripts are not a package; SYNFLOW_MIGRATIONS_DIR tells app/core/migrate.py where they are.
COPY migrations ./migrations
COPY docker/entrypoint.sh /usr/local/bin/synflow-entrypoint
RUN chmod 0755 /usr/local/bin/synflow-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SYNFLOW_DATA_DIR=/data \
    SYNFLOW_MIGRATIONS_DIR=/opt/synflow/migrations
USER synflow
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["synflow-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
