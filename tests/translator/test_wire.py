"""Messages assembled as bytes (translator/wire.py, encoded.py) against the protobuf runtime's own encoding."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import struct_pb2, wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st

from tcpmesh.translator.encoded import Encoded, Resources, as_message, kept, kept_name
from tcpmesh.translator.wire import (
    entry_prefix,
    key,
    map_key_order,
    number,
    split,
    string_entry,
    string_value,
    struct_entries,
    struct_entry,
    varint,
    varint_field,
    varint_key,
)

_C = cluster_pb2.Cluster
_CLA = endpoint_pb2.ClusterLoadAssignment


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**32 - 1, 2**63])
def test_varint_is_the_runtime_encoding(value: int) -> None:
    encoded = wrappers_pb2.UInt64Value(value=value).SerializeToString()
    assert varint_field(varint_key(number(wrappers_pb2.UInt64Value, "value")), value) == encoded
    assert encoded == (b"\x08" + varint(value) if value else b"")


@given(st.dictionaries(st.text(min_size=0, max_size=6), st.text(max_size=200), max_size=8))
def test_struct_entries_are_the_deterministic_encoding(values: dict[str, str]) -> None:
    """Keys that are prefixes of one another, empty keys and values, non-ASCII and long values (two-byte lengths):
    the bytes are the runtime's, entry order included (map_key_order)."""
    expected = struct_pb2.Struct()
    expected.update(values)
    data = struct_entries({k: string_value(v) for k, v in values.items()})
    assert data == expected.SerializeToString(deterministic=True)
    assert b"".join(string_entry(entry_prefix(k), values[k]) for k in sorted(values, key=map_key_order)) == data
    assert b"".join(struct_entry(k, string_value(values[k])) for k in sorted(values, key=map_key_order)) == data


def test_split_cuts_where_the_fields_go_and_drops_them() -> None:
    template = _C(name="x", type=_C.EDS, alt_stat_name="y", lb_policy=_C.RANDOM)
    numbers = (number(_C, "name"), number(_C, "alt_stat_name"))
    before, middle, after = split(template.SerializeToString(deterministic=True), numbers)
    assert before == b""  # nothing comes before field 1
    rebuilt = before + b"\x0a\x01z" + middle + key(number(_C, "alt_stat_name")) + b"\x01w" + after
    assert _C.FromString(rebuilt) == _C(name="z", type=_C.EDS, alt_stat_name="w", lb_policy=_C.RANDOM)
    assert rebuilt == _C.FromString(rebuilt).SerializeToString(deterministic=True)


def test_an_encoded_resource_reads_like_its_message_and_is_never_changed_by_a_reader() -> None:
    message = _C(name="c", type=_C.EDS, eds_cluster_config=_C.EdsClusterConfig(service_name="c"))
    data = message.SerializeToString(deterministic=True)
    encoded = Encoded(_C, data, "c")
    assert encoded.SerializeToString(deterministic=True) is data
    assert encoded.ByteSize() == len(data)
    assert encoded.type == _C.EDS
    assert encoded.eds_cluster_config.service_name == "c"
    assert encoded.HasField("eds_cluster_config")
    assert not encoded.HasField("transport_socket")
    assert encoded == message
    assert encoded == Encoded(_C, data, "c")
    assert encoded != Encoded(_C, _C(name="d").SerializeToString(), "d")
    assert as_message(encoded) == message
    assert as_message(message) is message
    copy = encoded.parsed()
    copy.name = "changed"
    assert encoded.name == "c"
    assert encoded.message.name == "c"
    with pytest.raises(TypeError):
        hash(encoded)


def test_resources_hold_encoded_ones_as_pairs_and_give_them_back_as_encoded() -> None:
    a = Encoded(_CLA, _CLA(cluster_name="a").SerializeToString(), "a")
    b = _CLA(cluster_name="b")
    items = [kept(a), kept(b)]
    assert items[0] == ("a", a.data)
    assert items[1] is b
    assert [kept_name(i) for i in items] == ["a", "b"]
    resources = Resources(_CLA, items)
    assert len(resources) == 2
    assert isinstance(resources[0], Encoded)
    assert resources[0].cluster_name == "a"
    assert resources[1] is b
    assert [r.cluster_name for r in resources] == ["a", "b"]
    assert resources[:1] == (a,)
    assert resources == (a, b)
    assert resources == Resources(_CLA, [a, b])
    assert resources != (a,)
