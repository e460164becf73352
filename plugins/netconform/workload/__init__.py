"""The probe workload netconform deploys: names and labels, images, manifests (plain dicts), the run
namespace and its sweep, and deploying + waiting until Ready. Imports only `kube` and `errors`."""
