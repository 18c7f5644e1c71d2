# One image for every role of the production deployment (api, migrate, workers).
#   docker build -t iimm .                                  # CPU torch wheels
#   docker build --build-arg TORCH_INDEX=https://pypi.org/simple -t iimm:gpu .   # CUDA build
FROM python:3.11-slim AS base

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    IIMM_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not reinstall torch.
COPY pyproject.toml setup.py README.md ./
RUN mkdir -p app workers migrations iimm_cli \
    && touch app/__init__.py workers/__init__.py migrations/__init__.py iimm_cli/__init__.py \
    && pip install --extra-index-url "${TORCH_INDEX}" . \
    && pip uninstall -y iimm-service

COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY iimm_cli ./iimm_cli
COPY alembic.ini ./
RUN pip install --no-deps . && useradd --create-home --uid 1000 iimm \
    && mkdir -p /data && chown iimm /data
USER iimm

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--workers", "2"]
