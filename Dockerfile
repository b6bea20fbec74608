# gifting: the server image. Every package comes from uv.lock, installed at
# build time (nothing is installed when a container starts).
#
#   docker build -t gifting .
#   docker compose up          # see docker-compose.yml
FROM python:3.11-slim AS build
WORKDIR /app
ENV UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/gifting UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
# uv itself, pinned by hash.
COPY requirements/uv.txt requirements/uv.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/uv.txt
# The dependencies first (a layer that changes only with the lock)...
COPY pyproject.toml uv.lock ./
COPY clients/python/pyproject.toml clients/python/pyproject.toml
RUN uv sync --locked --no-dev --no-install-workspace --package gifting
# ...then the server itself, not editable.
COPY README.md ./
COPY gifting gifting
RUN uv sync --locked --no-dev --no-editable --package gifting

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/gifting gifting
COPY --from=build /opt/gifting /opt/gifting
ENV PATH=/opt/gifting/bin:$PATH PYTHONUNBUFFERED=1 GIFTING_DATA_DIR=/var/lib/gifting
USER gifting
WORKDIR /var/lib/gifting
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"
CMD ["gifting", "serve", "--host", "0.0.0.0", "--port", "8000"]
