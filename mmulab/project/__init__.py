"""Layer 3, project: the typed model of configs/*.toml (sources, toolchain, variants, demos, boot cases), its
reader and overlay merge, and the catalogue page made from it.
"""
