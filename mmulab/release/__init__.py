"""Layer 6, release: publish a build as a signed-off, reproducible release; verify and rebuild one from a stranger."""
