# One image for the server and the workers. For GPU workers, point TORCH_INDEX at PyTorch's
# CUDA wheel index for your driver:  docker build --build-arg TORCH_INDEX=<index URL> .
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PRUNESCOPE_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server server
COPY workers workers
COPY dashboard dashboard
COPY migrations migrations
COPY prunescope prunescope
RUN if [ -n "$TORCH_INDEX" ]; then pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; \
    else pip install "$TORCH_SPEC"; fi \
 && pip install . \
 && useradd --create-home --uid 1000 prunescope && mkdir -p /data && chown prunescope /data
USER prunescope
EXPOSE 8000
CMD ["prunescope", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
