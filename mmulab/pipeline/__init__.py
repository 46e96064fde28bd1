"""Layer 7, pipeline: doit's tasks, their actions and up-to-date checks, the run's report, soaks."""
