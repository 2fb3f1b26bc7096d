"""Looking inside: receptive fields, GLCM texture statistics of fingerprints (Sec. 4.5)."""
from gfd.analysis.receptive import receptive_field

__all__ = ["receptive_field"]
