"""Layer 8, lab: `mmulab lab`, the demos live in a browser: every case of a demo booting side by side and a busybox
shell on each kernel, served to a room over HTTP and websockets with limits a shared machine needs."""
