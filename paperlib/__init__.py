"""paperlib: small-scale reproduction of backdoor defences for CLIP models.

Everything runs offline from assets that `make setup` installs (see paperlib.assets).
"""

import warnings

__version__ = "0.1.0"

# timm (imported by open_clip) imports tqdm.auto, which warns inside Jupyter when ipywidgets is
# absent; paperlib's own bars fall back to text bars there (paperlib.progress), so the warning only
# adds a stderr output to every executed notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
