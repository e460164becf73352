"""The netconform lab: a real multi-node Kubernetes in network namespaces."""
