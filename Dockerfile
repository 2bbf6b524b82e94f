# Multi-stage build of the synflow service. Two images from one file:
#   docker build -t synflow .                    the full image (API + training workers), CPU torch
#   docker build --target api -t synflow-api .   the API alone, without torch (no training in it)
# A CUDA image: docker build --build-arg TORCH_VARIANT=cu126 -t synflow:cuda .
# torch is the version pyproject.toml pins, from the index that serves the variant
# (https://download.pytorch.org/whl/<variant>, or TORCH_INDEX_URL); the build fails if the installed
# torch is not that version or its torch.version.cuda does not match the variant.
# No `# syntax=` line: the builder's own Dockerfile frontend, nothing fetched from a registry.
ARG PYTHON_VERSION=3.11

# The sources both builders install (so a change to the code does not redo the torch layer).
FROM python:${PYTHON_VERSION}-slim AS sources
WORKDIR /build
COPY pyproject.toml README.md ./
COPY docker/check_torch.py docker/api_requirements.py ./docker/
COPY synflow ./synflow
COPY reactions ./reactions
COPY models ./models
COPY app ./app
COPY devsupport ./devsupport

FROM python:${PYTHON_VERSION}-slim AS builder
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY --from=sources /build/pyproject.toml ./
COPY --from=sources /build/docker ./docker
# torch first, pinned, from the variant's index; the project's own `torch==` pin is then satisfied
# (a local label such as +cpu matches it), so `pip install .` cannot swap in another build.
RUN index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/${TORCH_VARIANT}}" \
 && version=$(python docker/check_torch.py --pinned pyproject.toml) \
 && pip install --index-url "$index" --extra-index-url https://pypi.org/simple "torch==${version}" \
 && python docker/check_torch.py "${TORCH_VARIANT}" pyproject.toml
COPY --from=sources /build ./
RUN pip install . && python docker/check_torch.py "${TORCH_VARIANT}" pyproject.toml

FROM python:${PYTHON_VERSION}-slim AS builder-api
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY --from=sources /build ./
RUN python docker/api_requirements.py pyproject.toml > /tmp/requirements-api.txt \
 && pip install -r /tmp/requirements-api.txt \
 && pip install --no-deps . \
 && python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch in the api image'"

FROM python:${PYTHON_VERSION}-slim AS runtime-base
RUN apt-get update && apt-get install -y --no-install-recommends libxrender1 libxext6 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 synflow \
 && mkdir -p /data && chown synflow:synflow /data
WORKDIR /opt/synflow
# Alembic's scripts are not a package; SYNFLOW_MIGRATIONS_DIR tells app/core/migrate.py where they are.
COPY migrations ./migrations
COPY docker/entrypoint.sh /usr/local/bin/synflow-entrypoint
RUN chmod 0755 /usr/local/bin/synflow-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SYNFLOW_DATA_DIR=/data \
    SYNFLOW_MIGRATIONS_DIR=/opt/synflow/migrations
VOLUME ["/data"]
EXPOSE 8000
# /readyz: the process answers and its database is reachable and migrated (fails otherwise)
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
ENTRYPOINT ["synflow-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]

# The API alone: serves runs, molecules and pages; queued runs are trained by the full image's workers.
FROM runtime-base AS api
COPY --from=builder-api /opt/venv /opt/venv
# the API and its pages import without the training stack
RUN python -c "import app.main, app.cli.main"
USER synflow

# The default target: everything (API and training workers).
FROM runtime-base AS runtime
COPY --from=builder /opt/venv /opt/venv
USER synflow
