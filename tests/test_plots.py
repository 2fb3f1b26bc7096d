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


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two RGB(A) colours (1: the same, 21: black on white)."""
    import matplotlib.colors as mcolors

    def lum(c):
        rgb = np.array(mcolors.to_rgb(c))
        lin = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_value_of_a_matrix_reads_against_its_own_cell():
    # a correlation matrix with a strong negative entry: Blues drew it white and wrote it in white
    corr = np.array([[0.9, 0.1, -0.2], [0.0, 0.5, -0.9], [0.3, -0.4, 0.05]])
    counts = np.array([[40, 2, 0], [5, 30, 1], [0, 0, 12]])
    for mat in (corr, counts, 100 * np.abs(corr)):
        fig = plots.plot_matrix(mat, list("abc"), list("xyz"), fmt="{:.2f}", outline_diagonal=True)
        ax = fig.axes[0]
        im = ax.images[0]
        assert len(ax.texts) == mat.size
        for text in ax.texts:
            x, y = text.get_position()
            cell = im.cmap(im.norm(mat[int(y), int(x)]))
            assert _contrast(cell, text.get_color()) >= 3, (mat[int(y), int(x)], cell, text.get_color())
        assert len(ax.patches) == 3  # the framed diagonal
    # signed data: a diverging map centred on 0, whose extremes are not white
    fig = plots.plot_matrix(corr, list("abc"), list("xyz"))
    im = fig.axes[0].images[0]
    assert im.norm.vmin == -im.norm.vmax == -0.9
    for end in (im.cmap(0.0), im.cmap(1.0)):
        assert _contrast(end, "white") >= 3


def test_one_grouped_bar_helper_draws_every_closed_open_chart():
    """:func:`plots.grouped_bars` centres each group's bars on its position, skips missing values,
    writes values and the chance line on request; the closed/open charts of plots and widgets use it."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from gfd import widgets

    fig, ax = plt.subplots()
    centres = plots.grouped_bars(ax, [0, 1], [("closed", [0.8, 0.6], "tab:blue"), ("open", [0.5, None], None)],
                                 width=0.4, errors=[[0.1, 0.0], None], value_format="{:.0%}", chance=0.25)
    assert np.allclose(centres[0], [-0.2, 0.8]) and np.allclose(centres[1], [0.2, 1.2])
    assert [c.get_label() for c in ax.containers if c.get_label() in ("closed", "open")] == ["closed", "open"]
    assert [t.get_text() for t in ax.texts] == ["80%", "60%", "50%"]        # no text for the missing value
    assert [line.get_ydata()[0] for line in ax.lines if line.get_label() == "chance"] == [0.25]
    plt.close(fig)
    fig = Figure()
    ax = fig.add_subplot()
    plots.grouped_bars(ax, [0, 1, 2], [("a", [0.1, 0.2, 0.3], None)] * 3, horizontal=True)
    bars = [p for p in ax.patches]
    assert len(bars) == 9 and all(abs(b.get_height() - 0.8 / 3) < 1e-9 for b in bars)   # horizontal: height = width
    fig = widgets.world_bars(["base", "no D"], [0.8, 0.6], [0.5, None], chance=0.2)
    assert [t.get_text() for t in fig.axes[0].texts] == ["80%", "60%", "50%"]
    table = {"rows": [{"method": "m", "summary": {"closed": {"mean": 0.8, "std": 0.1, "values": [0.7, 0.9]},
                                                  "open": None}}], "reference": {"m": {"closed": 90.0}}, "meta": {}}
    ax = plots.plot_table(table, chance=0.5).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["paper", "chance", "closed (here)", "open (here)"]
    plt.close("all")
