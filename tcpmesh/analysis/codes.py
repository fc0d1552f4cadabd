"""Every analyzer code in one catalogue. Codes are stable: never renumber, only add."""

from __future__ import annotations

from tcpmesh.analysis.findings import Code, Level

__all__ = [
    "ALL_CODES",
    "DESTINATION_PORT_AMBIGUOUS",
    "DESTINATION_PORT_NOT_FOUND",
    "DESTINATION_RULE_HOST_NOT_FOUND",
    "GATEWAY_NOT_FOUND",
    "GATEWAY_SELECTS_NO_PROXY",
    "GATEWAY_SERVER_CONFLICT",
    "GATEWAY_SERVER_UNUSED",
    "INVALID_CREDENTIAL",
    "MATCH_GATEWAY_NOT_BOUND",
    "REFERENCED_RESOURCE_NOT_FOUND",
    "RULE_MATCHES_NO_SERVER",
    "SCHEMA_VALIDATION_ERROR",
    "SCHEMA_VALIDATION_WARNING",
    "SERVICE_SELECTS_NO_WORKLOADS",
    "SUBSET_NOT_FOUND",
    "SUBSET_SELECTS_NO_WORKLOADS",
    "TARGET_PORT_NOT_FOUND",
    "TLS_MATCH_SHADOWED",
    "VIRTUAL_SERVICE_HOST_NOT_IN_GATEWAY",
    "VIRTUAL_SERVICE_IGNORED",
    "WORKLOAD_PORT_NAME_UNKNOWN",
]

# Validation problems from load_config, re-emitted in the analyzer format.
SCHEMA_VALIDATION_ERROR = Code("TM0001", "SchemaValidationError", Level.ERROR)
SCHEMA_VALIDATION_WARNING = Code("TM0002", "SchemaValidationWarning", Level.WARNING)

# VirtualService references.
REFERENCED_RESOURCE_NOT_FOUND = Code("TM0101", "ReferencedResourceNotFound", Level.ERROR)
GATEWAY_NOT_FOUND = Code("TM0102", "GatewayNotFound", Level.ERROR)
SUBSET_NOT_FOUND = Code("TM0103", "SubsetNotFound", Level.ERROR)
DESTINATION_PORT_NOT_FOUND = Code("TM0104", "DestinationPortNotFound", Level.ERROR)
DESTINATION_PORT_AMBIGUOUS = Code("TM0105", "DestinationPortAmbiguous", Level.WARNING)
MATCH_GATEWAY_NOT_BOUND = Code("TM0106", "MatchGatewayNotBound", Level.WARNING)
VIRTUAL_SERVICE_HOST_NOT_IN_GATEWAY = Code("TM0107", "VirtualServiceHostNotInGateway", Level.WARNING)

# DestinationRules.
SUBSET_SELECTS_NO_WORKLOADS = Code("TM0201", "SubsetSelectsNoWorkloads", Level.WARNING)
DESTINATION_RULE_HOST_NOT_FOUND = Code("TM0202", "DestinationRuleHostNotFound", Level.WARNING)

# Gateways.
GATEWAY_SELECTS_NO_PROXY = Code("TM0301", "GatewaySelectsNoProxy", Level.WARNING)
GATEWAY_SERVER_CONFLICT = Code("TM0302", "GatewayServerConflict", Level.WARNING)
GATEWAY_SERVER_UNUSED = Code("TM0303", "GatewayServerUnused", Level.INFO)
INVALID_CREDENTIAL = Code("TM0304", "InvalidCredential", Level.ERROR)
"""A credentialName Secret that exists but serves nothing (no cert/key or CA keys, another namespace)."""

# Routing on gateway ports.
VIRTUAL_SERVICE_IGNORED = Code("TM0401", "VirtualServiceIgnored", Level.WARNING)
RULE_MATCHES_NO_SERVER = Code("TM0402", "RuleMatchesNoServer", Level.WARNING)
TLS_MATCH_SHADOWED = Code("TM0403", "TLSMatchShadowed", Level.WARNING)

# Services and workloads.
SERVICE_SELECTS_NO_WORKLOADS = Code("TM0501", "ServiceSelectsNoWorkloads", Level.INFO)
WORKLOAD_PORT_NAME_UNKNOWN = Code("TM0502", "WorkloadPortNameUnknown", Level.WARNING)
TARGET_PORT_NOT_FOUND = Code("TM0503", "TargetPortNotFound", Level.WARNING)

ALL_CODES: tuple[Code, ...] = (
    SCHEMA_VALIDATION_ERROR,
    SCHEMA_VALIDATION_WARNING,
    REFERENCED_RESOURCE_NOT_FOUND,
    GATEWAY_NOT_FOUND,
    SUBSET_NOT_FOUND,
    DESTINATION_PORT_NOT_FOUND,
    DESTINATION_PORT_AMBIGUOUS,
    MATCH_GATEWAY_NOT_BOUND,
    VIRTUAL_SERVICE_HOST_NOT_IN_GATEWAY,
    SUBSET_SELECTS_NO_WORKLOADS,
    DESTINATION_RULE_HOST_NOT_FOUND,
    GATEWAY_SELECTS_NO_PROXY,
    GATEWAY_SERVER_CONFLICT,
    GATEWAY_SERVER_UNUSED,
    INVALID_CREDENTIAL,
    VIRTUAL_SERVICE_IGNORED,
    RULE_MATCHES_NO_SERVER,
    TLS_MATCH_SHADOWED,
    SERVICE_SELECTS_NO_WORKLOADS,
    WORKLOAD_PORT_NAME_UNKNOWN,
    TARGET_PORT_NOT_FOUND,
)
