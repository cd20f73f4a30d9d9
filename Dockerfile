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

# Dependencies first, so code changes do not reinstall torch.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p app worker distillery \
    && touch app/__init__.py worker/__init__.py distillery/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y distillery

COPY app ./app
COPY worker ./worker
COPY distillery ./distillery
COPY migrations ./migrations
COPY alembic.ini ./
COPY examples ./examples
RUN pip install --no-deps -c constraints.txt . \
    && mkdir -p /data/artifacts /data/work \
    && chown -R distillery:distillery /data

USER distillery
ENV DISTILLERY_ARTIFACT_URL=/data/artifacts \
    DISTILLERY_WORK_DIR=/data/work
EXPOSE 8000
CMD ["distillery", "serve", "--host", "0.0.0.0", "--port", "8000"]
