"""Kubernetes Gateway API for L4 (GatewayClass, Gateway, TCPRoute, TLSRoute, ReferenceGrant): typed values, the
CRDs' rules, and the conversion to the internal Istio model that Istio's ``pilot/pkg/config/kube/gateway`` does."""
