"""Static checks of the deployment files (no container runtime on these machines)."""
