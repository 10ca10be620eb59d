# RunPod serverless worker image (GPU). Build: docker build -t hy3d-worker .
# torch 2.14.1's PyPI wheel bundles its CUDA 13 runtime (nvidia-* wheels), so
# a slim Python base is enough; the host needs an NVIDIA driver for CUDA 13.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HOME=/models/hf \
    HY3DGEN_MODELS=/models/hy3dgen \
    U2NET_HOME=/models/u2net \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    HY3D_PROFILE=3 \
    RUNPOD_LOG_LEVEL=INFO

# libgl1/libglib2.0-0: opencv-python (pulled in by hy3dgen); libgomp1: onnxruntime, numba.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY constraints.txt requirements.txt ./
RUN pip install -c constraints.txt torch torchvision \
    && pip install -c constraints.txt -r requirements.txt

COPY pipeline ./pipeline
COPY worker.py app.py ./

# Compile numba's cache now: the first `import rembg` otherwise costs 40-70 s of cold start.
RUN mkdir -p "$NUMBA_CACHE_DIR" && python -c "import rembg"

CMD ["python", "-u", "worker.py"]
