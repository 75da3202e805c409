# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled lane: the common packet straight to its frame object (`FrameLane`, used by
`Sniffer.feed`) or to its `kshock decode --json` line (`JsonLane`).

`Sniffer.feed` (+ `JsonLineEncoder.encode`), for one case only: an Ethernet/IPv4/TCP segment
that carries the next in-order bytes of a known connection direction and is exactly one
whole Produce request or response of a shape the decoder has already learnt (see
decode.Decoder.decode_data and fastpath.py). For it the lane changes the sniffer's and the
decoder's state exactly as the Python code would and makes the JSON line that code would
print, without building a frame object. Every other packet goes to the Python sniffer,
untouched by the lane. tests/unit/test_wire_lane.py proves the output byte-equal to the
Python path.

Counters the Python code keeps on objects (packets, segments, frames, the newest time) are
kept here in C while the lane runs and written back before the Python sniffer sees a packet,
and at the end.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_FromDouble
from libc.math cimport copysign, fabs, floor
from libc.string cimport memcmp

import builtins

cdef object _round = builtins.round
cdef object _json_dumps = None
cdef Py_ssize_t _CACHE_MAX = 4096


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
    """One magic-2 batch fills data[start:end] exactly (its record count is at start + 57)."""
    cdef long long length
    if end - start < 17:
        return False
    length = _i32(data + start + 8)
    return length >= 49 and start + 12 + length == end and data[start + 16] == 2


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


cdef class _Refs:
    """What the lane reads of one _Lane on every frame, fetched once (its fields never change)."""
    cdef object lane, half, other, framer, dconn
    cdef str ends  # '"src": "...", "dst": "..."'
    cdef bint is_request
    cdef long long min_size, max_size


cdef enum Taken:
    NOT_TAKEN, BARE_ACK, REQUEST, RESPONSE


cdef class _Lane:
    """Recognises the common packet and changes the Python state for it (`_take`); the
    subclasses say what comes out: a JSON line, or the frame object itself."""
    cdef object sniffer, stats, decoder, lanes
    cdef dict refs  # lane key (12 bytes) -> _Refs
    cdef dict strings  # str | None -> its JSON text
    cdef dict floats  # latency -> repr
    # the Python counters, kept here between sync() and flush()
    cdef long long packets, segments, frames, requests, responses, next_expire
    cdef object last_ts
    cdef public long long made  # frames this lane made (the rest came from the Python path)
    cdef public long long records_read  # pcap records run_pcap has read (also when it raised)
    # what _take found, for the output
    cdef _Refs found_refs
    cdef tuple found_shape
    cdef object found_client_id, found_latency
    cdef long long found_packet
    cdef int found_correlation_id, found_partition, found_records, found_error_code
    cdef Py_ssize_t found_size, found_at

    def __init__(self, sniffer):
        self.sniffer = sniffer
        self.stats = sniffer.stats
        self.decoder = sniffer.decoder
        self.lanes = sniffer._lanes
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

    cdef _Refs _refs(self, bytes key, object lane):
        cdef _Refs refs = self.refs.get(key)
        if refs is not None and refs.lane is lane:
            return refs
        refs = _Refs()
        refs.lane = lane
        refs.half = lane.half
        refs.other = lane.other
        refs.framer = lane.framer
        refs.dconn = lane.dconn
        refs.ends = '"src": ' + self._string(lane.src) + ', "dst": ' + self._string(lane.dst)
        refs.is_request = lane.is_request
        refs.min_size = lane.min_size
        refs.max_size = lane.max_size
        if len(self.refs) >= _CACHE_MAX:
            self.refs = {}
        self.refs[key] = refs
        return refs

    cdef int _take(self, object ts, int linktype, const unsigned char* p, Py_ssize_t length) except -1:
        """NOT_TAKEN: not the common case, nothing changed, the Python sniffer takes the packet.
        Else the packet's state changes are made and BARE_ACK, REQUEST or RESPONSE says what
        it was (the frame's fields in self.found_*)."""
        cdef Py_ssize_t end, data_at, n, at, start, rec_end, size
        cdef unsigned int total, seq, ack
        cdef int flags, off, b, error_code
        cdef long long next_off, packet, d
        cdef double t
        cdef _Refs refs
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
        lane = self.lanes.get(key)
        if lane is None:
            return NOT_TAKEN
        refs = self._refs(key, lane)
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
            for shape in dconn.request_shapes:
                if _starts(data, size, 0, shape[0]) and _starts(data, size, 8, shape[1]):
                    break
            else:
                return NOT_TAKEN
            at = shape[2]
            if at < 0 or at + 8 > size or shape[8]:  # (topic ids to resolve: the Python way)
                return NOT_TAKEN
            # (partition, records) as decode_data reads them: its inline check for a compact
            # record set of 128 bytes to 16 KiB, else _match_request_shape's one-batch case
            if shape[3]:
                b = data[at + 4]
                if b >= 0x80:
                    if data[at + 5] >= 0x80:
                        return NOT_TAKEN
                    start = at + 6
                    rec_end = start + ((b & 0x7F) | (data[at + 5] << 7)) - 1
                    if size != rec_end + 3 or data[size - 1] or data[size - 2] or data[size - 3] \
                            or start + 61 > size or _i32(data + start + 8) + 12 != rec_end - start \
                            or data[start + 16] != 2:
                        return NOT_TAKEN
                else:
                    start = at + 5
                    rec_end = start + b - 1
                    if b < 1 or size != rec_end + 3 or data[size - 1] or data[size - 2] or data[size - 3] \
                            or not _one_batch(data, start, rec_end):
                        return NOT_TAKEN
            else:
                start = at + 8
                rec_end = start + _i32(data + at + 4)
                if rec_end < start or size != rec_end or not _one_batch(data, start, rec_end):
                    return NOT_TAKEN
            correlation_id = _i32(data + 4)
            # from here on, state changes exactly as the Python lane makes them
            outstanding = dconn.outstanding
            if len(outstanding) >= dconn.max_outstanding:
                del outstanding[next(iter(outstanding))]
            client_id = shape[9]
            outstanding[correlation_id] = (shape[4], shape[5], ts, client_id)
            if client_id and dconn.client_id is None:
                dconn.client_id = client_id
            self._took(refs, shape, half, framer, ts, packet, next_off + n, size, data_at + 4)
            self.requests += 1
            self.found_correlation_id = correlation_id
            self.found_partition, self.found_records = _i32(data + at), _i32(data + start + 57)
            return REQUEST
        correlation_id = _i32(data)
        outstanding = dconn.outstanding
        request = outstanding.get(correlation_id)
        if request is None:
            return NOT_TAKEN
        api_key, api_version, req_ts, client_id = request
        for shape in dconn.response_shapes:
            if shape[0] == api_key and shape[1] == api_version and _starts(data, size, 4, shape[2]):
                break
        else:
            return NOT_TAKEN
        at = shape[3]
        if at < 0 or size != at + shape[5] or at + 6 > size or not _starts(data, size, at + shape[6], shape[4]) \
                or (shape[7] and data[size - 1]) or shape[10]:
            return NOT_TAKEN
        if type(req_ts) is not float:
            return NOT_TAKEN
        latency = round3((t - <double>req_ts) * 1000.0)
        if latency - latency != 0.0:
            return NOT_TAKEN
        del outstanding[correlation_id]
        self._took(refs, shape, half, framer, ts, packet, next_off + n, size, data_at + 4)
        self.responses += 1
        self.found_correlation_id, self.found_client_id, self.found_latency = correlation_id, client_id, latency
        self.found_partition, self.found_error_code = _i32(data + at), _i16(data + at + 4)
        return RESPONSE

    cdef void _took(self, _Refs refs, tuple shape, object half, object framer, object ts, long long packet,
                    long long next_off, Py_ssize_t size, Py_ssize_t at) except *:
        """A whole frame taken: the stream and framer move past it; what it was, for the output."""
        self._advance(half, ts, packet)
        framer.buf_off = half.next_off = next_off
        self.frames += 1
        self.made += 1
        self.found_refs, self.found_shape, self.found_packet, self.found_size, self.found_at = \
            refs, shape, packet, size, at

    cdef inline void _advance(self, object half, object ts, long long packet) except *:
        self.packets = packet
        self.segments += 1
        if ts > self.last_ts:
            self.last_ts = ts
        conn = half.conn
        if ts > conn.last_ts:
            conn.last_ts = ts



cdef class JsonLane(_Lane):
    """`kshock decode --json`: the common packet straight to its JSON line (see `run`)."""
    cdef dict shape_text  # id(shape) -> (shape, JSON text around the correlation id)

    def __init__(self, sniffer):
        _Lane.__init__(self, sniffer)
        self.shape_text = {}

    cdef object line(self, object ts, int linktype, const unsigned char* p, Py_ssize_t length):
        """The JSON line of this packet's frame, "" for a bare ACK, or None: not the common
        case, nothing changed, the Python sniffer takes it."""
        cdef int taken = self._take(ts, linktype, p, length)
        if taken == NOT_TAKEN:
            return None
        if taken == BARE_ACK:
            return ""
        refs = self.found_refs
        head, middle = self._shape_text(self.found_shape, taken == REQUEST)
        if taken == REQUEST:
            return ''.join(['{"ts": ', repr(ts), ', ', refs.ends, ', ', head, str(self.found_correlation_id), middle,
                            str(self.found_partition), '], "records": ', str(self.found_records),
                            ', "error_codes": [], "latency_ms": null, "conn_client_id": ',
                            self._string(refs.dconn.client_id), ', "decoded": true, "error": null, "packets": [',
                            str(self.found_packet), '], "size": ', str(self.found_size), '}'])
        error_code = self.found_error_code
        return ''.join(['{"ts": ', repr(ts), ', ', refs.ends, ', ', head, str(self.found_correlation_id),
                        ', "client_id": ', self._string(self.found_client_id), middle, str(self.found_partition),
                        '], "records": null, "error_codes": ', '[]' if error_code == 0 else f'[{error_code}]',
                        ', "latency_ms": ', self._float(self.found_latency), ', "conn_client_id": ',
                        self._string(refs.dconn.client_id), ', "decoded": true, "error": null, "packets": [',
                        str(self.found_packet), '], "size": ', str(self.found_size), '}'])

    cdef tuple _shape_text(self, tuple shape, bint request):
        """The JSON text around a shape's correlation id (it is the same for every frame)."""
        cached = self.shape_text.get(id(shape))
        if cached is not None and cached[0] is shape:
            return cached[1]
        if request:  # (head, middle, at, flexible, api_key, api_version, api, topics, ids, client id)
            text = (f'"kind": "request", "api_key": {shape[4]}, "api": {self._string(shape[6])}, '
                    f'"api_version": {shape[5]}, "correlation_id": ',
                    f', "client_id": {self._string(shape[9])}, "topics": {_json(list(shape[7]))}, '
                    f'"partitions": [')
        else:  # (api_key, api_version, head, at, fixed, total, fixed at, flexible, api, topics, ids)
            text = (f'"kind": "response", "api_key": {shape[0]}, "api": {self._string(shape[8])}, '
                    f'"api_version": {shape[1]}, "correlation_id": ',
                    f', "topics": {_json(list(shape[9]))}, "partitions": [')
        if len(self.shape_text) >= _CACHE_MAX:
            self.shape_text = {}
        self.shape_text[id(shape)] = (shape, text)
        return text

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


cdef class FrameLane(_Lane):
    """`Sniffer.feed` for the common packet: the very Request/Response object the Python lane
    makes (its constructors from wire.model), or None (the Python sniffer takes the packet)."""
    cdef object new_request, new_response

    def __init__(self, sniffer, new_request, new_response):
        _Lane.__init__(self, sniffer)
        self.new_request = new_request
        self.new_response = new_response

    def feed(self, object ts, object linktype, bytes raw):
        """A list of the packet's events ([] for a bare ACK, [frame] for a frame), or None."""
        cdef int taken
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
        shape = self.found_shape
        lane = refs.lane
        data = PyBytes_FromStringAndSize(PyBytes_AS_STRING(raw) + self.found_at, self.found_size)
        if taken == REQUEST:  # (head, middle, at, flexible, api_key, api_version, api, topics, ids, client id)
            return [self.new_request(ts, lane.src, lane.dst, shape[4], shape[6], shape[5], self.found_correlation_id,
                                     shape[9], shape[7], (self.found_partition,), self.found_records, (), None,
                                     refs.dconn.client_id, True, None, (self.found_packet,), self.found_size, data,
                                     lane.flow)]
        # (api_key, api_version, head, at, fixed, total, fixed at, flexible, api, topics, ids)
        error_code = self.found_error_code
        return [self.new_response(ts, lane.src, lane.dst, shape[0], shape[8], shape[1], self.found_correlation_id,
                                  self.found_client_id, shape[9], (self.found_partition,), None,
                                  (error_code,) if error_code else (), self.found_latency, refs.dconn.client_id,
                                  True, None, (self.found_packet,), self.found_size, data, lane.flow)]


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
