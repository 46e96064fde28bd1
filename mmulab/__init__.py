"""mmulab: pinned sources -> RISC-V Linux with and without an MMU -> proven in QEMU."""
