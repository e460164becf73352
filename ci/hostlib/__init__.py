"""What the lab (ci/lablib) and the simulator (ci/simlib) both need to run a Kubernetes on this machine."""
