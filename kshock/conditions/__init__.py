"""PURE: what the user means — condition text, the FIELDS table, and matching decoded frames.

    from kshock.conditions import parse_condition, matches
    cond = parse_condition('api == Produce and client_id == "shop" and topic in {"orders"}')
    str(cond)                 # canonical text; parse_condition(str(cond)) == cond
    matches(cond, frame)      # a wire Request/Response/Malformed
"""

from kshock.conditions.fields import FIELDS, Field, api_names, describe_fields, field_names
from kshock.conditions.match import Matcher, matches, needs_records
from kshock.conditions.parse import (
    And,
    Compare,
    Condition,
    ConditionError,
    Exists,
    In,
    Not,
    Or,
    fields_used,
    parse_condition,
    topics_named,
)

__all__ = [
    "FIELDS", "And", "Compare", "Condition", "ConditionError", "Exists", "Field", "In", "Matcher",
    "Not", "Or", "api_names", "describe_fields", "field_names", "fields_used", "matches",
    "needs_records", "parse_condition", "topics_named",
]
