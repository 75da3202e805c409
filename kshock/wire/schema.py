"""kafka-python 3's schema-driven message classes, as one table, and a generic summary walk.

`SchemaTable` maps api keys to their request/response classes, versions and flexible-version
ranges. `summarize` walks any decoded message by its schema and pulls out what a frame event
shows: topic names (or topic ids), partitions, non-zero error codes and record counts. The
same rules are what the fast path (fastpath.py) must reproduce exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from kshock.wire.apis import API_NAMES
from kshock.wire.records import Budget, count_records

# what a topic-ish struct calls its name, and a partition-ish struct its index
_TOPIC_NAME_FIELDS = ("name", "topic", "topic_name")
_PARTITION_FIELDS = frozenset({"partition_index", "partition", "index", "partition_id"})
_PARTITION_LIST_FIELDS = frozenset({"partitions", "partition_indexes"})
_TOPIC_LIST_FIELDS = frozenset({"topic_names"})
# sub-trees that name topics/partitions the frame is not about
_SKIP_FIELDS = frozenset({"forgotten_topics_data", "node_endpoints"})
# frames whose records field counts: Produce requests and Fetch responses
RECORD_COUNTING = frozenset({(0, "request"), (1, "response")})


@dataclass(frozen=True, slots=True)
class ApiSpec:
    api_key: int
    name: str  # the spec's name: "Produce", "Fetch", ...
    request: Any  # kafka-python class, e.g. ProduceRequest
    response: Any
    max_version: int
    request_flexible_from: int  # first flexible version; a large number when never flexible
    response_flexible_from: int

    def request_flexible(self, version: int) -> bool:
        return version >= self.request_flexible_from

    def response_flexible(self, version: int) -> bool:
        return version >= self.response_flexible_from


class Summary(NamedTuple):
    """What a frame event shows of a body (a tuple: built on the hot path)."""

    topics: tuple[str, ...]
    topic_ids: tuple[bytes, ...]  # 16-byte ids in order of first appearance, for resolution
    partitions: tuple[int, ...]
    error_codes: tuple[int, ...]
    records: int | None


class SchemaTable:
    """Every api key kafka-python knows; built once per decoder (imports kafka.protocol)."""

    def __init__(self) -> None:
        import kafka.protocol.admin  # noqa: F401 - importing registers the message classes
        import kafka.protocol.consumer  # noqa: F401
        import kafka.protocol.metadata  # noqa: F401
        import kafka.protocol.producer  # noqa: F401
        import kafka.protocol.sasl  # noqa: F401
        from kafka.protocol.api_key import ApiKey
        from kafka.protocol.api_message import ApiMessage
        from kafka.version import __version__

        self.library = f"kafka-python {__version__}"
        # the spec's names, also for keys kafka-python has no schema (or no name) for
        self.names: dict[int, str] = {int(k): k.name for k in ApiKey}
        self.names.update(enumerate(API_NAMES))
        found: dict[int, dict[str, Any]] = {}
        stack = list(ApiMessage.__subclasses__())
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            if getattr(cls, "_class_version", None) is None and getattr(cls, "_json", None):
                found.setdefault(cls.API_KEY, {})[cls.type] = cls
        self.specs: dict[int, ApiSpec] = {}
        for key, pair in sorted(found.items()):
            if "request" not in pair or "response" not in pair:
                continue
            req, resp = pair["request"], pair["response"]
            name = self.names.get(key) or (req.name[: -len("Request")]
                                           if req.name.endswith("Request") else req.name)
            self.names[key] = name
            self.specs[key] = ApiSpec(
                key, name, req, resp, req.max_version,
                _flexible_from(req), _flexible_from(resp),
            )

    def spec(self, api_key: int) -> ApiSpec | None:
        return self.specs.get(api_key)

    def name(self, api_key: int | None) -> str | None:
        if api_key is None:
            return None
        return self.names.get(api_key)

    def missing(self, api_key: int, api_version: int) -> str:
        """Why a frame of an api key without a schema is decoded no further than its header."""
        name = self.names.get(api_key)
        if name is None:
            return f"unknown api key {api_key}"
        return f"{self.library} has no schema for {name} v{api_version} (api key {api_key}): header only"

    def known(self, api_key: int, api_version: int) -> bool:
        spec = self.specs.get(api_key)
        return spec is not None and 0 <= api_version <= spec.max_version


def _flexible_from(cls: Any) -> int:
    flex = cls._flexible_versions
    if flex is None or flex[0] < 0:
        return 1 << 30
    return flex[0]


def summarize(message: Any, version: int, count_record_sets: bool) -> Summary:
    """Topics, partitions, non-zero error codes (in order of first appearance) and records."""
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    errors: list[int] = []
    records = [0, Budget()]  # the count, and the frame's decompression bound
    _walk(message, message._struct, version, False, False, topics, topic_ids, partitions, errors,
          records, count_record_sets)
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), tuple(errors),
                   records[0] if count_record_sets else None)


def _walk(obj, struct, version, in_topic, in_partition, topics, topic_ids, partitions, errors,
          records, count_record_sets) -> None:
    for field in struct._fields:
        if not field.for_version_q(version):
            continue
        name = field.name
        if name in _SKIP_FIELDS:
            continue
        value = getattr(obj, name, None)
        if value is None:
            continue
        type_str = field.type_str
        if field.is_struct_array():
            sub_topic = "Topic" in type_str
            sub_part = "Partition" in type_str
            for item in value:
                _walk(item, field, version, sub_topic, sub_part, topics, topic_ids, partitions,
                      errors, records, count_record_sets)
        elif field.is_struct():
            _walk(value, field, version, "Topic" in type_str, "Partition" in type_str, topics,
                  topic_ids, partitions, errors, records, count_record_sets)
        elif name.endswith("error_code") and type_str == "int16":  # also partition_error_code (AddPartitionsToTxn)
            if value and value not in errors:
                errors.append(value)
        elif in_topic and name in _TOPIC_NAME_FIELDS and type_str == "string":
            if value and value not in topics:
                topics.append(value)
        elif in_topic and name == "topic_id" and type_str == "uuid":
            raw = value.bytes
            if any(raw) and raw not in topic_ids:
                topic_ids.append(raw)
        elif in_partition and name in _PARTITION_FIELDS and type_str == "int32":
            if value not in partitions:
                partitions.append(value)
        elif in_topic and name in _PARTITION_LIST_FIELDS and type_str == "[]int32":
            for p in value:
                if p not in partitions:
                    partitions.append(p)
        elif name in _TOPIC_LIST_FIELDS and type_str == "[]string":
            for t in value:
                if t and t not in topics:
                    topics.append(t)
        elif type_str == "records" and count_record_sets:
            records[0] += count_records(value, records[1])
