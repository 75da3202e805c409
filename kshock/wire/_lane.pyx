# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled lane: the common packet straight to its frame object (`FrameLane`, used by
`Sniffer.feed`) or to its `kshock decode --json` line (`JsonLane`).

`Sniffer.feed` (+ `JsonLineEncoder.encode`), for one case only: an Ethernet/IPv4/TCP segment
that carries the next in-order bytes of a known connection direction and is exactly one
whole Produce request or response of a shape the decoder has already learnt (see
decode.Decoder.decode_data and shapes.py). For it the lane changes the sniffer's and the
decoder's state exactly as the Python code would and fills the JSON line template that code
would fill (model.line_template), without building a frame object. Every other packet goes to
the Python sniffer, untouched by the lane. tests/unit/test_wire_lanes.py and
tests/unit/test_wire_compiled_lane.py prove the output equal to the Python path's.

Its state, and the Python attributes it reads and writes, are declared in _lane.pxd; where
fields sit in a frame comes from layout.py. Counters the Python code keeps on objects
(packets, segments, frames, the newest time) are kept here in C while the lane runs and
written back before the Python sniffer sees a packet, and at the end.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_FromDouble
from libc.math cimport copysign, fabs, floor
from libc.string cimport memcmp

import builtins

from kshock.wire import layout
from kshock.wire.model import Request, Response, line_parts
from kshock.wire.shapes import RequestShape, ResponseShape

cdef object _round = builtins.round
cdef object _json_dumps = None
cdef Py_ssize_t _CACHE_MAX = 4096
# where fields sit (layout.py), in a frame without its length prefix as the lane holds it
cdef Py_ssize_t _CORRELATION = layout.CORRELATION_AT - layout.LENGTH_PREFIX  # 4
cdef Py_ssize_t _AFTER_CORRELATION = _CORRELATION + 4  # 8
cdef Py_ssize_t _RESPONSE_BODY = layout.RESPONSE_CORRELATION_AT - layout.LENGTH_PREFIX + 4  # 4
cdef Py_ssize_t _RECORDS = layout.PARTITION_INDEX_SIZE  # a partition's records, from its index
cdef Py_ssize_t _ERROR_CODE = layout.PARTITION_INDEX_SIZE  # a response partition's error code
cdef Py_ssize_t _BATCH_LENGTH = layout.BATCH_LENGTH_AT
cdef Py_ssize_t _BATCH_MAGIC = layout.BATCH_MAGIC_AT
cdef Py_ssize_t _BATCH_COUNT = layout.BATCH_RECORD_COUNT_AT
cdef Py_ssize_t _BATCH_OVERHEAD = layout.BATCH_OVERHEAD
cdef Py_ssize_t _BATCH_MIN_LENGTH = layout.BATCH_MIN_LENGTH
cdef Py_ssize_t _BATCH_HEADER = layout.BATCH_HEADER_SIZE
cdef tuple _ONE_ITEM = ("partitions", "packets")  # one partition, one packet


cdef inline int _i32(const unsigned char* p) noexcept:
    return <int>((<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3])

cdef inline unsigned int _le32(const unsigned char* p) noexcept:
    return (<unsigned int>p[3] << 24) | (<unsigned int>p[2] << 16) | (<unsigned int>p[1] << 8) | p[0]

cdef inline unsigned int _u32(const unsigned char* p) noexcept:
    return (<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3]

cdef inline int _i16(const unsigned char* p) noexcept:
    return <short>((p[0] << 8) | p[1])

cdef inline bint _starts(const unsigned char* data, Py_ssize_t n, Py_ssize_t at, bytes prefix):
    cdef Py_ssize_t k = PyBytes_GET_SIZE(prefix)
    if at < 0 or at + k > n:
        return False
    return memcmp(data + at, PyBytes_AS_STRING(prefix), k) == 0

cdef inline bint _one_batch(const unsigned char* data, Py_ssize_t start, Py_ssize_t end) noexcept:
    """One magic-2 batch fills data[start:end] exactly (its record count is at start +
    _BATCH_COUNT)."""
    cdef long long length
    if end - start <= _BATCH_MAGIC:
        return False
    length = _i32(data + start + _BATCH_LENGTH)
    return length >= _BATCH_MIN_LENGTH and start + _BATCH_OVERHEAD + length == end \
        and data[start + _BATCH_MAGIC] == 2


cdef inline long long _mod32(long long x) noexcept:
    x = x % 4294967296
    if x < 0:
        x += 4294967296
    return x


cdef str _json(object value):
    global _json_dumps
    if _json_dumps is None:
        import json
        _json_dumps = json.dumps
    return _json_dumps(value)


cpdef object round3(double x):
    """round(x, 3), exactly as Python rounds, without its decimal conversion where that is
    safe: x * 1000 (one rounding) far from a .5 boundary rounds to the same integer as the
    exact decimal value of x * 1000 does, and k / 1000.0 is the double nearest k / 1000."""
    cdef double y = x * 1000.0
    cdef double f, r
    if fabs(y) < 1e12:
        f = y - floor(y)
        if fabs(f - 0.5) > 1e-3:
            r = floor(y + 0.5) / 1000.0
            return PyFloat_FromDouble(r if r != 0.0 else copysign(0.0, x))  # round(-0.0001, 3) is -0.0
    return _round(x, 3)


cdef class _RequestShape:
    def __init__(self, source):
        self.source = source
        self.head = source.head
        self.middle = source.middle
        self.index_at = source.index_at
        self.flexible = source.flexible
        self.by_id = bool(source.topic_ids)
        self.api_key = source.api_key
        self.api_version = source.api_version
        self.api = source.api
        self.topics = source.topics
        self.client_id = source.client_id
        self.line = None


cdef class _ResponseShape:
    def __init__(self, source):
        self.source = source
        self.head = source.head
        self.fixed = source.fixed
        self.index_at = source.index_at
        self.total = source.total
        self.fixed_at = source.fixed_at
        self.flexible = source.flexible
        self.by_id = bool(source.topic_ids)
        self.api_key = source.api_key
        self.api_version = source.api_version
        self.api = source.api
        self.topics = source.topics
        self.line = None


cdef class _DirectionRefs:
    pass


cdef class _ShapeLane:
    def __init__(self, sniffer):
        self.sniffer = sniffer
        self.stats = sniffer.stats
        self.decoder = sniffer.decoder
        self.directions = sniffer._lanes
        self.refs = {}
        self.strings = {None: "null"}
        self.floats = {}

    cdef void sync(self) except *:
        stats = self.stats
        self.packets = stats.packets
        self.segments = self.frames = self.requests = self.responses = 0
        self.next_expire = self.sniffer._next_expire
        self.last_ts = self.sniffer._last_ts

    cdef void flush(self) except *:
        stats = self.stats
        stats.packets = self.packets
        stats.kafka_segments += self.segments
        stats.frames += self.frames
        stats.requests += self.requests
        stats.responses += self.responses
        self.segments = self.frames = self.requests = self.responses = 0
        self.sniffer._last_ts = self.last_ts

    cdef str _string(self, object text):
        cdef object out = self.strings.get(text)
        if out is None:
            out = _json(text)
            if len(self.strings) >= _CACHE_MAX:
                self.strings = {None: "null"}
            self.strings[text] = out
        return <str>out

    cdef str _float(self, object value):
        if value == 0.0:  # 0.0 and -0.0 are one dict key, with two texts
            return repr(value)
        cdef object out = self.floats.get(value)
        if out is None:
            out = repr(value)
            if len(self.floats) >= _CACHE_MAX:
                self.floats = {}
            self.floats[value] = out
        return <str>out

    cdef _DirectionRefs _refs(self, bytes key, object direction):
        cdef _DirectionRefs refs = self.refs.get(key)
        if refs is not None and refs.direction is direction:
            return refs
        refs = _DirectionRefs()
        refs.direction = direction
        refs.half = direction.half
        refs.other = direction.other
        refs.framer = direction.framer
        refs.dconn = direction.dconn
        refs.src_json = self._string(direction.src)
        refs.dst_json = self._string(direction.dst)
        refs.is_request = direction.is_request
        refs.min_size = direction.min_size
        refs.max_size = direction.max_size
        refs.shapes_of = None
        refs.shapes = ()
        if len(self.refs) >= _CACHE_MAX:
            self.refs = {}
        self.refs[key] = refs
        return refs

    cdef tuple _typed_shapes(self, _DirectionRefs refs, object shapes):
        """Typed copies of the decoder's shapes for this direction (made when the decoder has
        learnt a new one; copies of shapes it still has are kept, with their templates)."""
        cdef list out = []
        for source in shapes:
            for typed in refs.shapes:
                if (<_RequestShape>typed).source is source if refs.is_request \
                        else (<_ResponseShape>typed).source is source:
                    out.append(typed)
                    break
            else:
                if refs.is_request:
                    if type(source) is not RequestShape:
                        raise TypeError("a request shape that is not a shapes.RequestShape")
                    out.append(_RequestShape(source))
                else:
                    if type(source) is not ResponseShape:
                        raise TypeError("a response shape that is not a shapes.ResponseShape")
                    out.append(_ResponseShape(source))
        refs.shapes_of = shapes
        refs.shapes = tuple(out)
        return refs.shapes

    cdef int _take(self, object ts, int linktype, const unsigned char* p, Py_ssize_t length) except -1:
        """NOT_TAKEN: not the common case, nothing changed, the Python sniffer takes the packet.
        Else the packet's state changes are made and BARE_ACK, REQUEST or RESPONSE says what
        it was (the frame's fields in self.found_*)."""
        cdef Py_ssize_t end, data_at, n, at, start, rec_end, size
        cdef unsigned int total, seq, ack
        cdef int flags, off, b, error_code
        cdef long long next_off, packet, d
        cdef double t
        cdef _DirectionRefs refs
        cdef _RequestShape request_shape
        cdef _ResponseShape response_shape
        cdef tuple typed
        if linktype != 1 or length < 54 or type(ts) is not float:
            return NOT_TAKEN
        t = ts
        if t - t != 0.0:  # inf or nan: the Python encoder's json.dumps fallback
            return NOT_TAKEN
        if p[12] != 0x08 or p[13] != 0x00 or p[14] != 0x45 or p[23] != 6 or (((p[20] << 8) | p[21]) & 0x3FFF):
            return NOT_TAKEN
        total = (p[16] << 8) | p[17]
        end = 14 + total
        if total == 0 or end > length:
            end = length
        elif total < 40:
            return NOT_TAKEN
        off = p[46]
        flags = p[47]
        data_at = 34 + (off >> 4) * 4
        if off < 0x50 or data_at > end or flags & 0x07:
            return NOT_TAKEN
        packet = self.packets + 1
        if packet >= self.next_expire:
            return NOT_TAKEN
        key = PyBytes_FromStringAndSize(<const char*>p + 26, 12)
        direction = self.directions.get(key)
        if direction is None:
            return NOT_TAKEN
        refs = self._refs(key, direction)
        half = refs.half
        other = refs.other
        if half.pending or half.fin_off is not None or other.gate is not None:
            return NOT_TAKEN
        seq = _u32(p + 38)
        next_off = half.next_off
        if _mod32(<long long>seq - <long long>half.base_seq - next_off) != 0:
            return NOT_TAKEN
        if flags & 0x10 and other.started:
            ack = _u32(p + 42)
            d = _mod32(<long long>ack - <long long>other.base_seq - <long long>other.next_off)
            if 0 < d < 2147483648:
                return NOT_TAKEN
        n = end - data_at
        if n == 0:  # a bare ACK
            self._advance(half, ts, packet)
            return BARE_ACK
        framer = refs.framer
        if n < 4 or framer.buf or framer.hunting or framer.skip_to is not None:
            return NOT_TAKEN
        size = _i32(p + data_at)
        if size + 4 != n or size < refs.min_size or size > refs.max_size:
            return NOT_TAKEN
        if not self.decoder.fast:
            return NOT_TAKEN
        cdef const unsigned char* data = p + data_at + 4  # the frame without its size, `size` bytes
        dconn = refs.dconn
        if refs.is_request:
            shapes = dconn.request_shapes
            typed = refs.shapes if shapes is refs.shapes_of else self._typed_shapes(refs, shapes)
            for shape in typed:
                request_shape = <_RequestShape>shape
                if _starts(data, size, 0, request_shape.head) \
                        and _starts(data, size, _AFTER_CORRELATION, request_shape.middle):
                    break
            else:
                return NOT_TAKEN
            at = request_shape.index_at
            if at < 0 or at + _RECORDS + 4 > size or request_shape.by_id:  # (topic ids to resolve: the Python way)
                return NOT_TAKEN
            # (partition, records) as decode_data reads them: its inline check for a compact
            # record set of 128 bytes to 16 KiB, else match_request_shape's one-batch case
            if request_shape.flexible:
                b = data[at + _RECORDS]
                if b >= 0x80:
                    if data[at + _RECORDS + 1] >= 0x80:
                        return NOT_TAKEN
                    start = at + _RECORDS + 2
                    rec_end = start + ((b & 0x7F) | (data[at + _RECORDS + 1] << 7)) - 1
                    if size != rec_end + 3 or data[size - 1] or data[size - 2] or data[size - 3] \
                            or start + _BATCH_HEADER > size \
                            or _i32(data + start + _BATCH_LENGTH) + _BATCH_OVERHEAD != rec_end - start \
                            or data[start + _BATCH_MAGIC] != 2:
                        return NOT_TAKEN
                else:
                    start = at + _RECORDS + 1
                    rec_end = start + b - 1
                    if b < 1 or size != rec_end + 3 or data[size - 1] or data[size - 2] or data[size - 3] \
                            or not _one_batch(data, start, rec_end):
                        return NOT_TAKEN
            else:
                start = at + _RECORDS + 4
                rec_end = start + _i32(data + at + _RECORDS)
                if rec_end < start or size != rec_end or not _one_batch(data, start, rec_end):
                    return NOT_TAKEN
            correlation_id = _i32(data + _CORRELATION)
            # from here on, state changes exactly as the Python lane makes them
            outstanding = dconn.outstanding
            if len(outstanding) >= dconn.max_outstanding:
                del outstanding[next(iter(outstanding))]
            client_id = request_shape.client_id
            outstanding[correlation_id] = (request_shape.api_key, request_shape.api_version, ts, client_id)
            if client_id and dconn.client_id is None:
                dconn.client_id = client_id
            self._took(refs, request_shape, half, framer, ts, packet, next_off + n, size, data_at + 4)
            self.requests += 1
            self.found_correlation_id = correlation_id
            self.found_partition, self.found_records = _i32(data + at), _i32(data + start + _BATCH_COUNT)
            return REQUEST
        correlation_id = _i32(data)
        outstanding = dconn.outstanding
        request = outstanding.get(correlation_id)
        if request is None:
            return NOT_TAKEN
        api_key, api_version, req_ts, client_id = request
        shapes = dconn.response_shapes
        typed = refs.shapes if shapes is refs.shapes_of else self._typed_shapes(refs, shapes)
        for shape in typed:
            response_shape = <_ResponseShape>shape
            if response_shape.api_key == api_key and response_shape.api_version == api_version \
                    and _starts(data, size, _RESPONSE_BODY, response_shape.head):
                break
        else:
            return NOT_TAKEN
        at = response_shape.index_at
        if at < 0 or size != at + response_shape.total or at + _ERROR_CODE + 2 > size \
                or not _starts(data, size, at + response_shape.fixed_at, response_shape.fixed) \
                or (response_shape.flexible and data[size - 1]) or response_shape.by_id:
            return NOT_TAKEN
        if type(req_ts) is not float:
            return NOT_TAKEN
        latency = round3((t - <double>req_ts) * 1000.0)
        if latency - latency != 0.0:
            return NOT_TAKEN
        del outstanding[correlation_id]
        self._took(refs, response_shape, half, framer, ts, packet, next_off + n, size, data_at + 4)
        self.responses += 1
        self.found_correlation_id, self.found_client_id, self.found_latency = correlation_id, client_id, latency
        self.found_partition, self.found_error_code = _i32(data + at), _i16(data + at + _ERROR_CODE)
        return RESPONSE

    cdef void _took(self, _DirectionRefs refs, object shape, object half, object framer, object ts,
                    long long packet, long long next_off, Py_ssize_t size, Py_ssize_t at) except *:
        """A whole frame taken: the stream and framer move past it; what it was, for the output."""
        self._advance(half, ts, packet)
        framer.buf_off = half.next_off = next_off
        self.frames += 1
        self.made += 1
        self.found_refs, self.found_shape, self.found_packet, self.found_size, self.found_at = \
            refs, shape, packet, size, at

    cdef void _advance(self, object half, object ts, long long packet) except *:
        self.packets = packet
        self.segments += 1
        if ts > self.last_ts:
            self.last_ts = ts
        conn = half.conn
        if ts > conn.last_ts:
            conn.last_ts = ts


cdef class JsonLane(_ShapeLane):
    """`kshock decode --json`: the common packet straight to its JSON line (see `run`): the
    JsonLineEncoder's template (model.line_parts), filled in once per shape and direction with
    what the shape fixes, then joined with what varies from frame to frame."""

    def __init__(self, sniffer):
        _ShapeLane.__init__(self, sniffer)
        self.line_parts = line_parts

    cdef object line(self, object ts, int linktype, const unsigned char* p, Py_ssize_t length):
        """The JSON line of this packet's frame, "" for a bare ACK, or None: not the common
        case, nothing changed, the Python sniffer takes it."""
        cdef int taken = self._take(ts, linktype, p, length)
        cdef tuple t
        if taken == NOT_TAKEN:
            return None
        if taken == BARE_ACK:
            return ""
        refs = self.found_refs
        t = self._parts(refs, self.found_shape, taken == REQUEST)
        # the holes, in as_json() order: ts, correlation_id, partitions, records, conn_client_id,
        # packets, size (a request); ts, correlation_id, client_id, partitions, error_codes,
        # latency_ms, conn_client_id, packets, size (a response)
        if taken == REQUEST:
            return ''.join([<str>t[0], repr(ts), <str>t[1], str(self.found_correlation_id), <str>t[2],
                            str(self.found_partition), <str>t[3], str(self.found_records), <str>t[4],
                            self._string(refs.dconn.client_id), <str>t[5], str(self.found_packet), <str>t[6],
                            str(self.found_size), <str>t[7]])
        error_code = self.found_error_code
        return ''.join([<str>t[0], repr(ts), <str>t[1], str(self.found_correlation_id), <str>t[2],
                        self._string(self.found_client_id), <str>t[3], str(self.found_partition), <str>t[4],
                        '[]' if error_code == 0 else f'[{error_code}]', <str>t[5], self._float(self.found_latency),
                        <str>t[6], self._string(refs.dconn.client_id), <str>t[7], str(self.found_packet), <str>t[8],
                        str(self.found_size), <str>t[9]])

    cdef tuple _parts(self, _DirectionRefs refs, object shape, bint request):
        """The line template's pieces for a shape's frames in this direction, with what the
        shape fixes filled in (made once per typed shape: they are per direction)."""
        cdef _RequestShape request_shape
        cdef _ResponseShape response_shape
        if request:
            request_shape = <_RequestShape>shape
            if request_shape.line is None:
                request_shape.line = tuple(self.line_parts(
                    Request, _ONE_ITEM, src=refs.src_json, dst=refs.dst_json, api_key=str(request_shape.api_key),
                    api=self._string(request_shape.api), api_version=str(request_shape.api_version),
                    client_id=self._string(request_shape.client_id),
                    topics=_json(list(request_shape.topics)), error_codes="[]", latency_ms="null",
                    decoded="true", error="null"))
                if len(request_shape.line) != 8:
                    raise ValueError("the request line template does not have the holes the lane fills")
            return request_shape.line
        response_shape = <_ResponseShape>shape
        if response_shape.line is None:
            response_shape.line = tuple(self.line_parts(
                Response, _ONE_ITEM, src=refs.src_json, dst=refs.dst_json, api_key=str(response_shape.api_key),
                api=self._string(response_shape.api), api_version=str(response_shape.api_version),
                topics=_json(list(response_shape.topics)), records="null", decoded="true", error="null"))
            if len(response_shape.line) != 10:
                raise ValueError("the response line template does not have the holes the lane fills")
        return response_shape.line

    def run(self, packets, feed, finish, encode, write, frame_type):
        """Write (through `write`, in chunks of lines) the JSON line of every frame of
        `packets` ((ts, link-type, bytes) tuples): the lane's where it can, else `feed`'s
        events (the Python sniffer) through `encode`; then those of `finish()`. Returns the
        number of lines."""
        cdef list chunk = []
        cdef Py_ssize_t shown = 0
        self.sync()
        try:
            for ts, linktype, raw in packets:
                if type(raw) is bytes:
                    shown += self._packet(ts, linktype, <const unsigned char*>PyBytes_AS_STRING(raw),
                                          PyBytes_GET_SIZE(raw), raw, feed, encode, chunk, frame_type)
                else:  # (bytearray, memoryview: the Python sniffer takes them as they are)
                    shown += self._general(ts, linktype, raw, feed, encode, chunk, frame_type)
                chunk = _spill(chunk, write, 256)
        finally:
            self.flush()
        for event in finish():
            if isinstance(event, frame_type):
                chunk.append(encode(event))
                shown += 1
        _spill(chunk, write, 1)
        return shown

    cdef Py_ssize_t _packet(self, ts, linktype, const unsigned char* p, Py_ssize_t length, raw, feed,
                            encode, list chunk, frame_type) except -1:
        """One packet's lines into `chunk` (the lane's, or the Python sniffer's); how many.
        `raw`: the packet as bytes, or None (made only if the Python sniffer needs it)."""
        line = self.line(ts, _ethernet(linktype), p, length)
        if line is None:
            if raw is None:
                raw = PyBytes_FromStringAndSize(<const char*>p, length)
            return self._general(ts, linktype, raw, feed, encode, chunk, frame_type)
        if line:
            chunk.append(line)
            return 1
        return 0

    cdef Py_ssize_t _general(self, ts, linktype, raw, feed, encode, list chunk, frame_type) except -1:
        """A packet the lane did not take: the Python sniffer's events, encoded into `chunk`
        (the counters written back first and read again after, also when the sniffer raises)."""
        cdef Py_ssize_t n = 0
        self.flush()
        try:
            events = feed(ts, linktype, raw)
        finally:
            self.sync()
        for event in events:
            if isinstance(event, frame_type):
                chunk.append(encode(event))
                n += 1
        return n


cdef inline int _ethernet(object linktype):
    """1 for Ethernet (the one link type the lane reads), else 0; never overflows a C int."""
    return 1 if type(linktype) is int and linktype == 1 else 0


cdef list _spill(list chunk, write, Py_ssize_t at_least):
    """Write the chunk's lines once it holds `at_least` (each line ends with a newline)."""
    if chunk and len(chunk) >= at_least:
        chunk.append("")
        write("\n".join(chunk))
        return []
    return chunk


cdef class FrameLane(_ShapeLane):
    """`Sniffer.feed` for the common packet: the very Request/Response object the Python lane
    makes (its constructors from wire.model), or None (the Python sniffer takes the packet)."""

    def __init__(self, sniffer, new_request, new_response):
        _ShapeLane.__init__(self, sniffer)
        self.new_request = new_request
        self.new_response = new_response

    def feed(self, object ts, object linktype, bytes raw):
        """A list of the packet's events ([] for a bare ACK, [frame] for a frame), or None."""
        cdef int taken
        cdef _RequestShape request_shape
        cdef _ResponseShape response_shape
        if _ethernet(linktype) == 0:
            return None
        self.sync()
        taken = self._take(ts, 1, <const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        if taken == NOT_TAKEN:
            return None
        self.flush()
        if taken == BARE_ACK:
            return []
        refs = self.found_refs
        direction = refs.direction
        data = PyBytes_FromStringAndSize(PyBytes_AS_STRING(raw) + self.found_at, self.found_size)
        if taken == REQUEST:
            request_shape = <_RequestShape>self.found_shape
            return [self.new_request(ts, direction.src, direction.dst, request_shape.api_key, request_shape.api,
                                     request_shape.api_version, self.found_correlation_id, request_shape.client_id,
                                     request_shape.topics, (self.found_partition,), self.found_records, (), None,
                                     refs.dconn.client_id, True, None, (self.found_packet,), self.found_size, data,
                                     direction.flow)]
        response_shape = <_ResponseShape>self.found_shape
        error_code = self.found_error_code
        return [self.new_response(ts, direction.src, direction.dst, response_shape.api_key, response_shape.api,
                                  response_shape.api_version, self.found_correlation_id, self.found_client_id,
                                  response_shape.topics, (self.found_partition,), None,
                                  (error_code,) if error_code else (), self.found_latency, refs.dconn.client_id,
                                  True, None, (self.found_packet,), self.found_size, data, direction.flow)]


def run_pcap(JsonLane lane, data, Py_ssize_t pos, bint little, double unit, int linktype,
             Py_ssize_t max_record, feed, encode, write, frame_type):
    """JsonLane.run over the records of a classic pcap read in place from `data` (its mapped
    bytes), from offset `pos`: no tuple and no bytes object for a packet the lane takes. Stops
    at the end or at the first record that is not whole (the caller's reader goes on from
    there and says what is wrong). Returns (lines written, offset reached, records read)."""
    cdef const unsigned char[::1] view = data
    cdef const unsigned char* base = &view[0] if view.shape[0] else NULL
    cdef Py_ssize_t end = view.shape[0], start
    cdef unsigned int sec, frac, incl
    cdef long long records = 0
    cdef list chunk = []
    cdef Py_ssize_t shown = 0
    cdef const unsigned char* h
    lane.records_read = 0
    lane.sync()
    try:
        while pos + 16 <= end:
            h = base + pos
            if little:
                sec, frac, incl = _le32(h), _le32(h + 4), _le32(h + 8)
            else:
                sec, frac, incl = _u32(h), _u32(h + 4), _u32(h + 8)
            start = pos + 16
            if incl > max_record or start + incl > end:
                break
            pos = start + incl
            records += 1
            lane.records_read = records
            ts = PyFloat_FromDouble(<double>sec + <double>frac * unit)  # (no fused multiply-add: setup.py)
            shown += lane._packet(ts, linktype, base + start, incl, None, feed, encode, chunk, frame_type)
            chunk = _spill(chunk, write, 256)
    finally:
        lane.flush()
    _spill(chunk, write, 1)
    return shown, pos, records
