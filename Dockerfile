# cartscout API image: slim Python 3.11, pinned dependencies, non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp1: LightGBM's OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 cartscout

WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
COPY cartscout ./cartscout
COPY contract ./contract
COPY features ./features
COPY models ./models
COPY training ./training
COPY service ./service
COPY synthetic ./synthetic
RUN pip install -c constraints.txt .

USER cartscout
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["cartscout", "serve", "--host", "0.0.0.0", "--port", "8000"]
