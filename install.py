"""Run by the AUTOMATIC1111 WebUI (and Forge) at start-up: installs only what is missing, with launch.run_pip.

Inside the WebUI, lib_regedit needs what the WebUI already ships (torch, numpy, Pillow) and
scikit-learn (LIME's k-means and English stop words), which the WebUI does not ship, and
scikit-image (LIME's superpixels), which it does; a stripped environment gets a clear install
instead of an import error.

ComfyUI-Manager runs this file too, where there is no ``launch``: it does nothing there, since the
Manager installs ``requirements.txt`` (the same four packages, and nothing ComfyUI ships).
"""

try:
    import launch
except ImportError:  # not the WebUI: ComfyUI-Manager, which installs requirements.txt itself
    launch = None

REQUIREMENTS = {"numpy": "numpy", "PIL": "pillow", "sklearn": "scikit-learn", "skimage": "scikit-image"}

if launch is not None:
    for module, package in REQUIREMENTS.items():
        if not launch.is_installed(module):
            launch.run_pip(f"install {package}", f"{package} for sd-webui-regedit")
