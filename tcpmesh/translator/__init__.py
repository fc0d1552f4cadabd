"""The pure translator: (config snapshot, proxy) → Envoy v3 resources. No I/O, no logging, no globals."""

from __future__ import annotations

from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.translate import EnvoyResources, translate, translate_indexed

__all__ = ["EnvoyResources", "Proxy", "TranslateOptions", "translate", "translate_indexed"]
