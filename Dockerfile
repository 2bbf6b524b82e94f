# Multi-stage build of the synflow service. Two images from one file:
#   docker build -t synflow .                    the full image (API + training workers), CPU torch
#   docker build --target api -t synflow-api .   the API alone, without torch (no training in it)
# A CUDA image: docker build --build-arg TORCH_VARIANT=cu126 -t synflow:cuda .
# torch is the version pyproject.toml pins, from the index that serves the variant
# (https://download.pytorch.org/whl/<variant>, or TORCH_INDEX_URL); the build fails if the installed
# torch is not that version or its torch.version.cuda does not match the variant.
# No `# syntax=` line: the builder's own Dockerfile frontend, nothing fetched from a registry.
ARG PYTHON_VERSION=3.11

# The sources both images install (so a change to the code does not redo the torch layer).
FROM python:${PYTHON_VERSION}-slim AS sources
WORKDIR /build
COPY pyproject.toml README.md ./
COPY docker/check_torch.py docker/api_requirements.py ./docker/
COPY synflow ./synflow
COPY reactions ./reactions
COPY models ./models
COPY app ./app
COPY devsupport ./devsupport

# What both images share: the runtime user, the data volume, the healthcheck and the entrypoint.
# Each image installs its virtual environment in place (no builder stage whose /opt/venv is then
# copied): with the legacy builder a copied venv is stored twice, in the builder's layers and in the
# image's, which doubled the check's disk use (8 GB) and once filled the CI machine's disk.
FROM python:${PYTHON_VERSION}-slim AS runtime-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends libxrender1 libxext6 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 synflow \
 && mkdir -p /data && chown synflow:synflow /data \
 && python -m venv /opt/venv
WORKDIR /opt/synflow
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
COPY --from=sources /build/pyproject.toml /build/docker/api_requirements.py /tmp/build/
RUN python /tmp/build/api_requirements.py /tmp/build/pyproject.toml > /tmp/build/requirements-api.txt \
 && pip install -r /tmp/build/requirements-api.txt \
 && rm -rf /tmp/build
COPY --from=sources /build /tmp/build
RUN pip install --no-deps /tmp/build && rm -rf /tmp/build \
 && python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch in the api image'" \
 && python -c "import app.main, app.cli.main"
# Alembic's scripts are not a package; SYNFLOW_MIGRATIONS_DIR tells app/core/migrate.py where they are.
COPY migrations ./migrations
COPY docker/entrypoint.sh /usr/local/bin/synflow-entrypoint
USER synflow

# The default target: everything (API and training workers).
FROM runtime-base AS runtime
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=
COPY --from=sources /build/pyproject.toml /build/docker/check_torch.py /tmp/build/
# torch first, pinned, from the variant's index; the project's own `torch==` pin is then satisfied
# (a local label such as +cpu matches it), so `pip install .` cannot swap in another build.
RUN index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/${TORCH_VARIANT}}" \
 && version=$(python /tmp/build/check_torch.py --pinned /tmp/build/pyproject.toml) \
 && pip install --index-url "$index" --extra-index-url https://pypi.org/simple "torch==${version}" \
 && python /tmp/build/check_torch.py "${TORCH_VARIANT}" /tmp/build/pyproject.toml \
 && rm -rf /tmp/build
COPY --from=sources /build /tmp/build
RUN pip install /tmp/build && python /tmp/build/docker/check_torch.py "${TORCH_VARIANT}" /tmp/build/pyproject.toml \
 && rm -rf /tmp/build
COPY migrations ./migrations
COPY docker/entrypoint.sh /usr/local/bin/synflow-entrypoint
USER synflow
