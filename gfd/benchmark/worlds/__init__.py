"""The benchmark's worlds, each a small declarative module on :mod:`gfd.benchmark.engine`.

:mod:`~gfd.benchmark.worlds.gan128` plays Sec. 4.2.1's 128 px GANs (64 px images; Tables 1, 3, 4, the
factor analysis of Fig. 7); :mod:`~gfd.benchmark.worlds.gan1024` plays Sec. 4.2.2's 1024 px GANs
(128 px images cropped without resizing; Table 2).  Each module declares its parameters, sizes,
frozen rules, real images and generator jobs as a :class:`~gfd.benchmark.engine.World` named
``WORLD``; the engine builds, caches and resumes every world the same way.
"""
