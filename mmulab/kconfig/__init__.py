"""Layer 2, kconfig: Linux's configuration language as pure text functions: `.config` lines and the Kconfig tree.

It knows nothing of the project, so the project's loader can check a user's fragment with it.
"""
