#!/usr/bin/env bash
# Set up (if needed) and start the Gradio app. Without Hunyuan3D weights it
# serves the draft backend and says so on the page. Extra args go to app.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"
