"""Layer 5, boot: QEMU runs through the Runner seam, the console is judged into an Outcome, faults get symbol names,
and a finished run is summed up.
"""
