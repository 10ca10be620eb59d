"""RunPod-facing code, kept out of the shared pipeline: what only a face needs.

- :mod:`pipeline.runpod.delivery`: the worker's result within RunPod's payload
  caps (inline base64, shrunk, or a bucket URL); imported by ``worker.py``.
- :mod:`pipeline.runpod.remote`: the app's client for a deployed endpoint
  (``HY3D_REMOTE_ENDPOINT``); imported by ``app.py``.

The response both of them speak is :mod:`pipeline.response`. The SDK itself
is the top-level ``runpod`` package (absolute imports never mean this one).
"""
