"""PURE: Kafka API keys and their names as in the protocol spec (keys 0-92).

The table lives in the innermost layer, kshock.wire.apis (the decoder names frames with it);
this module keeps its public names for the conditions and the workloads.
"""

from __future__ import annotations

from kshock.wire.apis import API_NAMES, api_key, api_key_of, api_name

__all__ = ["API_NAMES", "api_key", "api_key_of", "api_name"]
