# One slim, non-root image for the api and the GPU workers.
# The default torch wheel on Linux x86_64 is the CUDA build: workers use the GPU, the API never
# imports torch.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system distillery && useradd --system --gid distillery --create-home distillery
WORKDIR /app

# Dependencies first, so code changes do not reinstall torch: the hashed lock (every package at
# the version the project's numbers were measured with), then torch by version (the default
# Linux wheel: the CUDA build), then the project without resolving anything.
COPY requirements.lock constraints.txt ./
RUN pip install -c constraints.txt --upgrade pip \
    && pip install --require-hashes --no-deps -r requirements.lock \
    && pip install -c constraints.txt torch

COPY app ./app
COPY worker ./worker
COPY distillery ./distillery
COPY migrations ./migrations
COPY alembic.ini ./
COPY examples ./examples
COPY pyproject.toml README.md ./
RUN pip install --no-deps . \
    && mkdir -p /data/artifacts /data/work \
    && chown -R distillery:distillery /data

USER distillery
ENV DISTILLERY_ARTIFACT_URL=/data/artifacts \
    DISTILLERY_WORK_DIR=/data/work
EXPOSE 8000
CMD ["distillery", "serve", "--host", "0.0.0.0", "--port", "8000"]
