# trackd for production: `trackd serve` against MongoDB (set MONGODB_URI), both servers on
# all interfaces, as a non-root user. deploy/compose.yaml runs it behind a load balancer.
# Not built in this repository's CI (no container runtime there); tests/deploy checks it.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package is built from (see [tool.setuptools] in pyproject.toml).
COPY pyproject.toml README.md ./
COPY trackd ./trackd
COPY proto ./proto
COPY client ./client
RUN pip install . \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/trackd trackd

USER trackd
WORKDIR /var/lib/trackd
# Listen on every interface of the container; the ports are trackd's defaults.
ENV TRACKD_HOST=0.0.0.0 \
    TRACKD_GRPC_PORT=50051 \
    TRACKD_HTTP_PORT=8080
EXPOSE 50051 8080

# Ready = the database answers and the write queue is below its bound (GET /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('TRACKD_HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]

# SIGTERM (docker stop) drains in-flight requests for TRACKD_SHUTDOWN_GRACE_SECONDS.
STOPSIGNAL SIGTERM
CMD ["trackd", "serve"]
