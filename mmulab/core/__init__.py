"""Layer 1, core: what every stage uses and nothing of the project's own data: settings from the environment,
the build folder's layout, files written atomically, the one Runner seam for external tools, progress, the lock.
"""
