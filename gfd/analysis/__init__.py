"""Looking inside: residuals and spectra, receptive fields, fingerprints and their GLCM texture.

:mod:`~gfd.analysis.spectra`       noise residuals, FFT and DCT spectra (shared by figures and baselines)
:mod:`~gfd.analysis.receptive`     empirical receptive fields of G_enc and D
:mod:`~gfd.analysis.fingerprints`  fingerprints f = G(x) per source, mean fingerprints, similarity (Sec. 4.5, Fig. 4)
:mod:`~gfd.analysis.glcm`          GLCM texture correlation of fingerprints and its distinctness (Sec. 4.5, Fig. 6)
"""
from gfd.analysis.fingerprints import (cosine_similarity_within_between, extract_fingerprints, log_spectrum,
                                       mean_fingerprint_by_source)
from gfd.analysis.glcm import glcm_correlation, glcm_distinctness, glcm_features, glcm_stats, to_gray_levels
from gfd.analysis.receptive import receptive_field

__all__ = ["receptive_field", "extract_fingerprints", "mean_fingerprint_by_source", "log_spectrum",
           "cosine_similarity_within_between", "to_gray_levels", "glcm_correlation", "glcm_features",
           "glcm_stats", "glcm_distinctness"]
