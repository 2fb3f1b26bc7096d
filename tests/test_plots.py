"""The figures of the fingerprint chapter draw from plain arrays (no data, no training)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gfd import plots  # noqa: E402
from gfd.analysis.glcm import feature_names, glcm_stats  # noqa: E402


def test_fingerprint_figures_have_a_panel_per_source_and_row():
    k, h = 3, 16
    singles = [torch.randn(k, 3, h, h) for _ in range(2)]
    fig = plots.plot_fingerprint_sources(singles, torch.randn(k, 3, h, h), np.random.rand(k, h, h), ["a", "b", "c"])
    assert len(fig.axes) == (2 + 2) * k
    stats = glcm_stats(np.random.rand(30, 16), np.repeat([0, 1, 2], 10))
    fig = plots.plot_glcm_vectors(stats, ["a", "b", "c"], feature_names())
    assert len(fig.axes[0].lines) >= 3 and len(fig.axes[0].get_xticklabels()) == 16
    panels = [(name, torch.randn(3, h, h) * 0.1, "note") for name in ("G+C", "G+D+C")]
    fig = plots.plot_fingerprint_panels(torch.zeros(3, h, h), torch.zeros(3, h, h), panels)
    assert len(fig.axes) == 2 * (len(panels) + 1)
