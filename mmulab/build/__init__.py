"""Layer 4, build: from pinned sources to bootable bytes: fetch and trust, extract, toolchain and C library, kernel
config and kernel, busybox, the demo programs, ELF checks, initramfs images, the compile cache.
"""
