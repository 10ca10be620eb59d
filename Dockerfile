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

# libgl1 (libGL.so.1) and libopengl0 (libOpenGL.so.0, for pymeshlab's own libGLU):
# pymeshlab's core and plugins link them, and `import hy3dgen.shapegen` imports
# pymeshlab at module level; without libopengl0 its plugins fail to load and
# hy3dgen's mesh post-processors break. libglib2.0-0: pymeshlab's Qt.
# libgomp1: onnxruntime, numba. Debian's security updates change exact
# versions, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libopengl0 libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY constraints.txt requirements.txt ./
# hy3dgen's metadata asks for opencv-python (with Qt, for GUI windows); the
# worker shows none, so the same release's headless build replaces it in this
# layer: 36 MB less installed (196 -> 159 MB). The version is requirements.txt's.
RUN pip install -c constraints.txt torch torchvision \
    && pip install -c constraints.txt -r requirements.txt \
    && opencv="$(sed -n 's/^opencv-python==//p' requirements.txt)" \
    && pip uninstall -y opencv-python \
    && pip install --no-deps "opencv-python-headless==${opencv}"

# Optional baked weights. Only the weights package and the three modules it
# imports are copied first, so editing the rest of the code does not
# invalidate this (large) layer.
ARG DOWNLOAD_MODELS=false
ARG MODEL=hunyuan3d-2-turbo
COPY pipeline/__init__.py pipeline/errors.py pipeline/models.py pipeline/settings.py ./pipeline/
COPY pipeline/weights ./pipeline/weights
RUN if [ "$DOWNLOAD_MODELS" = "true" ]; then \
        python -m pipeline.weights download --model "$MODEL" --texture --rembg \
        && python -m pipeline.weights check --require "$MODEL"; \
    fi

COPY pipeline ./pipeline
COPY worker.py app.py ./

# Compile numba's cache now: the first `import rembg` otherwise costs 40-70 s of cold start,
# and the texture stage's vertex inpaint ~3 s on its first load. numba keys its cache by CPU
# name and features, so code is compiled for no particular CPU ("generic"): the one cache
# then serves every x86-64 host. On the host's own CPU the first `import rembg` took 66 s
# instead of 1-5 s. What generic code costs at run time is measured by bench/numba_cpu.py
# (README, "Deployment").
ENV NUMBA_CPU_NAME=generic
RUN mkdir -p "$NUMBA_CACHE_DIR" \
    && python -c "import rembg; from pipeline.texture.inpaint import warm_up; warm_up()"

CMD ["python", "-u", "worker.py"]
