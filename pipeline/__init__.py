"""The shared image-to-3D pipeline behind the RunPod worker and the Gradio app.

Importing this package is cheap: torch, hy3dgen, rembg and trimesh are only
imported by the modules that need them, when they are first used.
"""

__version__ = "0.1.0"
GENERATOR = f"hy3d-service {__version__}"
