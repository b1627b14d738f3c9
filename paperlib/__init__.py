"""paperlib: small-scale reproduction of backdoor defences for CLIP models.

Everything runs offline from assets that `make setup` installs (see paperlib.assets).
"""

__version__ = "0.1.0"
