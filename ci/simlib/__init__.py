"""ci/sim: a simulated cluster (real control plane, KWOK nodes) for what needs no packets."""
