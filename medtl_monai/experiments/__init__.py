"""Experiments built on the bundles: the strategy study (the TruncatedTL paper's table), the cut-point search and the
proxy pretraining that stands in for ImageNet offline. Each runs bundles through :mod:`medtl_monai.bundle` and
writes its own report; nothing below this room imports it. :mod:`.parallel` runs the independent trainings of a study
or a search in worker processes (CPU threads or one GPU each) or writes them as a SLURM job array.
"""
