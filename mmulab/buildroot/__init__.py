"""Layer 6, buildroot: the same demos as a Buildroot external tree (BR2_EXTERNAL), generated from configs/."""
