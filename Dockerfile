# RunPod serverless worker image (GPU).
#   docker build -t hy3d-worker .                                   # weights from RunPod's cache or a volume
#   docker build -t hy3d-worker --build-arg DOWNLOAD_MODELS=true .  # weights baked in
#
# Base: Python 3.11 on Debian bookworm. PyTorch's PyPI wheel (torch 2.14.1,
# pinned in constraints.txt) carries its own CUDA 13.0 runtime and cuDNN as
# nvidia-* wheels, so the CUDA libraries always match torch exactly; an
# nvidia/cuda base image would add a second, unused copy (several GB) and a
# devel image is not needed because nothing is compiled (texturing uses a
# PyTorch rasterizer). Hosts need an NVIDIA driver for CUDA 13.0 (select
# CUDA 13.0+ in the RunPod endpoint settings). Kernels cover sm_75-sm_120.
FROM python:3.11.7-slim-bookworm

# The container toolkit mounts the driver when these are set (nvidia/cuda images set them too).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/hf \
    HY3DGEN_MODELS=/models/hy3dgen \
    U2NET_HOME=/models/u2net \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    HY3D_PROFILE=3 \
    HY3D_MODEL=auto \
    RUNPOD_LOG_LEVEL=INFO

# libgl1, libglib2.0-0: opencv-python (a hy3dgen dependency); libgomp1: onnxruntime, numba.
# Debian's security updates change exact versions, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY constraints.txt requirements.txt ./
RUN pip install -c constraints.txt torch torchvision \
    && pip install -c constraints.txt -r requirements.txt

# Optional baked weights. Only the weights CLI is copied first, so editing the
# rest of the code does not invalidate this (large) layer.
ARG DOWNLOAD_MODELS=false
ARG MODEL=hunyuan3d-2-turbo
COPY pipeline/__init__.py pipeline/errors.py pipeline/models.py pipeline/weights.py ./pipeline/
RUN if [ "$DOWNLOAD_MODELS" = "true" ]; then \
        python -m pipeline.weights download --model "$MODEL" --texture --rembg \
        && python -m pipeline.weights check --require "$MODEL"; \
    fi

COPY pipeline ./pipeline
COPY worker.py app.py ./

# Compile numba's cache now: the first `import rembg` otherwise costs 40-70 s of cold start,
# and the texture stage's vertex inpaint ~3 s on its first load. (numba keys its cache by CPU
# model: on a different host CPU it compiles once more at start-up.)
RUN mkdir -p "$NUMBA_CACHE_DIR" \
    && python -c "import rembg; from pipeline.texture.inpaint import warm_up; warm_up()"

CMD ["python", "-u", "worker.py"]
