"""gfd: GFD-Net (GAN Fingerprint Disentangling Network, Yang et al. 2021) for the course notebooks.

This file only re-exports the names the notebooks use; each idea lives in its own module.
"""
__version__ = "0.1.0"

from gfd.config import PRESETS, Config, default_preset, describe_presets, get_config
from gfd.utils import choose_device, seed_everything
