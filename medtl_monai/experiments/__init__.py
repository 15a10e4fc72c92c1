"""Experiments built on the bundles: the strategy study (the TruncatedTL paper's table), the cut-point search and the
proxy pretraining that stands in for ImageNet offline. Each runs bundles through :mod:`medtl_monai.bundle` and
writes its own report; nothing below this room imports it.
"""
