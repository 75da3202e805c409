# The compiled lane's state and shapes, declared once (the code is in _lane.pyx).
#
# The lane changes the Python sniffer's state exactly as the Python code would, so it reads and
# writes these Python attributes (untyped: they belong to pure-Python classes). This list is
# the contract; tests/unit/test_wire_compiled_lane.py checks that every one exists.
#
#   Sniffer            stats, decoder, _lanes (lane key -> _FusedDirection), _next_expire, _last_ts
#   SnifferStats       packets, kafka_segments, frames, requests, responses
#   Decoder            fast
#   _FusedDirection    half, other, framer, dconn, src, dst, flow, is_request, min_size, max_size
#   stream half        pending, fin_off, gate, base_seq, next_off, started, conn
#   stream connection  last_ts
#   Framer             buf, hunting, skip_to, buf_off
#   decode.Connection  request_shapes, response_shapes, outstanding, max_outstanding, client_id
#   shapes.RequestShape   head, middle, index_at, flexible, api_key, api_version, api, topics,
#                         topic_ids, client_id  } copied once into the typed shapes below
#   shapes.ResponseShape  api_key, api_version, head, index_at, fixed, total, fixed_at, flexible,
#                         api, topics, topic_ids  }


cdef enum Taken:
    NOT_TAKEN, BARE_ACK, REQUEST, RESPONSE


cdef class _RequestShape:
    """A typed copy of a shapes.RequestShape (see there), and its JSON line template."""
    cdef object source  # the shapes.RequestShape it copies
    cdef bytes head, middle
    cdef Py_ssize_t index_at
    cdef bint flexible, by_id  # by_id: topic ids to resolve (the Python way takes those)
    cdef object api_key, api_version, api, topics, client_id
    cdef tuple line  # JsonLane: the encoder's line template's pieces, filled in for this shape (or None)


cdef class _ResponseShape:
    """A typed copy of a shapes.ResponseShape (see there), and its JSON line template."""
    cdef object source  # the shapes.ResponseShape it copies
    cdef bytes head, fixed
    cdef Py_ssize_t index_at, total, fixed_at
    cdef bint flexible, by_id
    cdef object api_key, api_version, api, topics
    cdef tuple line


cdef class _DirectionRefs:
    """What the lane reads of one sniffer._FusedDirection on every frame, fetched once (its
    fields never change), and typed copies of its connection's shapes for this direction."""
    cdef object direction, half, other, framer, dconn
    cdef str src_json, dst_json  # the endpoints' JSON text
    cdef bint is_request
    cdef long long min_size, max_size
    cdef object shapes_of  # the decoder's shapes tuple that `shapes` copies
    cdef tuple shapes  # of _RequestShape (a request direction) or _ResponseShape


cdef class _ShapeLane:
    """Recognises the common packet (one whole Produce frame of a learnt shape) and changes the
    Python state for it (`_take`); the subclasses say what comes out."""
    cdef object sniffer, stats, decoder, directions
    cdef dict refs  # lane key (12 bytes) -> _DirectionRefs
    cdef dict strings  # str | None -> its JSON text
    cdef dict floats  # latency -> repr
    # the Python counters, kept here between sync() and flush()
    cdef long long packets, segments, frames, requests, responses, next_expire
    cdef object last_ts
    cdef public long long made  # frames this lane made (the rest came from the Python path)
    cdef public long long records_read  # pcap records run_pcap has read (also when it raised)
    # what _take found, for the output
    cdef _DirectionRefs found_refs
    cdef object found_shape  # _RequestShape or _ResponseShape
    cdef object found_client_id, found_latency
    cdef long long found_packet
    cdef int found_correlation_id, found_partition, found_records, found_error_code
    cdef Py_ssize_t found_size, found_at

    cdef void sync(self) except *
    cdef void flush(self) except *
    cdef str _string(self, object text)
    cdef str _float(self, object value)
    cdef _DirectionRefs _refs(self, bytes key, object direction)
    cdef tuple _typed_shapes(self, _DirectionRefs refs, object shapes)
    cdef int _take(self, object ts, int linktype, const unsigned char* p, Py_ssize_t length) except -1
    cdef void _took(self, _DirectionRefs refs, object shape, object half, object framer, object ts,
                    long long packet, long long next_off, Py_ssize_t size, Py_ssize_t at) except *
    cdef void _advance(self, object half, object ts, long long packet) except *


cdef class JsonLane(_ShapeLane):
    """`kshock decode --json`: the common packet straight to its JSON line."""
    cdef object line_parts  # wire.model.line_parts: the JsonLineEncoder's template, in pieces

    cdef object line(self, object ts, int linktype, const unsigned char* p, Py_ssize_t length)
    cdef tuple _parts(self, _DirectionRefs refs, object shape, bint request)
    cdef Py_ssize_t _packet(self, ts, linktype, const unsigned char* p, Py_ssize_t length, raw, feed,
                            encode, list chunk, frame_type) except -1
    cdef Py_ssize_t _general(self, ts, linktype, raw, feed, encode, list chunk, frame_type) except -1


cdef class FrameLane(_ShapeLane):
    """`Sniffer.feed` for the common packet: the very Request/Response object."""
    cdef object new_request, new_response
