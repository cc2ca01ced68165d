//! Field numbers, each from the Perfetto `.proto` file its module names.

/// `protos/perfetto/trace/trace.proto`: `Trace`.
pub(crate) mod trace {
    pub(crate) const PACKET: u32 = 1;
}
/// `protos/perfetto/trace/trace_packet.proto`: `TracePacket`.
pub(crate) mod packet {
    pub(crate) const CLOCK_SNAPSHOT: u32 = 6;
    pub(crate) const TIMESTAMP: u32 = 8;
    pub(crate) const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10;
    pub(crate) const TRACK_EVENT: u32 = 11;
    pub(crate) const INTERNED_DATA: u32 = 12;
    pub(crate) const SEQUENCE_FLAGS: u32 = 13;
    pub(crate) const TRACK_DESCRIPTOR: u32 = 60;
    pub(crate) const PERF_SAMPLE: u32 = 66;
    pub(crate) const FIRST_PACKET_ON_SEQUENCE: u32 = 87;
    /// `SequenceFlags.SEQ_INCREMENTAL_STATE_CLEARED`.
    pub(crate) const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
    /// `SequenceFlags.SEQ_NEEDS_INCREMENTAL_STATE`.
    pub(crate) const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
}
/// `protos/perfetto/trace/clock_snapshot.proto`: `ClockSnapshot`, its `Clock`, and
/// `protos/perfetto/common/builtin_clock.proto`: `BuiltinClock`.
pub(crate) mod clock {
    pub(crate) const CLOCKS: u32 = 1;
    pub(crate) const PRIMARY_TRACE_CLOCK: u32 = 2;
    pub(crate) const CLOCK_ID: u32 = 1;
    pub(crate) const TIMESTAMP: u32 = 2;
    pub(crate) const REALTIME: u64 = 1;
    pub(crate) const BOOTTIME: u64 = 6;
}
/// `protos/perfetto/trace/track_event/track_descriptor.proto`: `TrackDescriptor`.
pub(crate) mod track {
    pub(crate) const UUID: u32 = 1;
    pub(crate) const NAME: u32 = 2;
    pub(crate) const PROCESS: u32 = 3;
    pub(crate) const THREAD: u32 = 4;
    pub(crate) const PARENT_UUID: u32 = 5;
    pub(crate) const COUNTER: u32 = 8;
}
/// `protos/perfetto/trace/track_event/process_descriptor.proto`: `ProcessDescriptor`.
pub(crate) mod process {
    pub(crate) const PID: u32 = 1;
    pub(crate) const PROCESS_NAME: u32 = 6;
}
/// `protos/perfetto/trace/track_event/thread_descriptor.proto`: `ThreadDescriptor`.
pub(crate) mod thread {
    pub(crate) const PID: u32 = 1;
    pub(crate) const TID: u32 = 2;
    pub(crate) const THREAD_NAME: u32 = 5;
}
/// `protos/perfetto/trace/track_event/track_event.proto`: `TrackEvent`.
pub(crate) mod event {
    pub(crate) const CATEGORY_IIDS: u32 = 3;
    pub(crate) const DEBUG_ANNOTATIONS: u32 = 4;
    pub(crate) const TYPE: u32 = 9;
    pub(crate) const NAME_IID: u32 = 10;
    pub(crate) const TRACK_UUID: u32 = 11;
    pub(crate) const NAME: u32 = 23;
    pub(crate) const DOUBLE_COUNTER_VALUE: u32 = 44;
    pub(crate) const FLOW_IDS: u32 = 47;
    pub(crate) const TERMINATING_FLOW_IDS: u32 = 48;
    /// `Type.TYPE_SLICE_BEGIN`.
    pub(crate) const TYPE_SLICE_BEGIN: u64 = 1;
    /// `Type.TYPE_SLICE_END`.
    pub(crate) const TYPE_SLICE_END: u64 = 2;
    /// `Type.TYPE_INSTANT`.
    pub(crate) const TYPE_INSTANT: u64 = 3;
    /// `Type.TYPE_COUNTER`.
    pub(crate) const TYPE_COUNTER: u64 = 4;
}
/// `protos/perfetto/trace/track_event/debug_annotation.proto`: `DebugAnnotation`.
pub(crate) mod annotation {
    pub(crate) const NAME_IID: u32 = 1;
    pub(crate) const BOOL_VALUE: u32 = 2;
    pub(crate) const UINT_VALUE: u32 = 3;
    pub(crate) const STRING_VALUE: u32 = 6;
    pub(crate) const STRING_VALUE_IID: u32 = 17;
}
/// `protos/perfetto/trace/interned_data/interned_data.proto`: `InternedData`; its
/// entries (`EventCategory`, `EventName`, `DebugAnnotationName` in track_event.proto and
/// debug_annotation.proto, `InternedString` in profiling/profile_common.proto) all
/// have `iid = 1` and the string as field 2.
pub(crate) mod interned {
    pub(crate) const EVENT_CATEGORIES: u32 = 1;
    pub(crate) const EVENT_NAMES: u32 = 2;
    pub(crate) const DEBUG_ANNOTATION_NAMES: u32 = 3;
    pub(crate) const DEBUG_ANNOTATION_STRING_VALUES: u32 = 29;
    pub(crate) const FUNCTION_NAMES: u32 = 5;
    pub(crate) const FRAMES: u32 = 6;
    pub(crate) const CALLSTACKS: u32 = 7;
    pub(crate) const BUILD_IDS: u32 = 16;
    pub(crate) const MAPPING_PATHS: u32 = 17;
    pub(crate) const SOURCE_PATHS: u32 = 18;
    pub(crate) const MAPPINGS: u32 = 19;
    pub(crate) const ENTRY_IID: u32 = 1;
    pub(crate) const ENTRY_STRING: u32 = 2;
}
/// `protos/perfetto/trace/profiling/profile_packet.proto`: `PerfSample`.
pub(crate) mod perf_sample {
    pub(crate) const PID: u32 = 2;
    pub(crate) const TID: u32 = 3;
    pub(crate) const CALLSTACK_IID: u32 = 4;
}
/// `protos/perfetto/trace/profiling/profile_common.proto`: `Mapping`, `Frame`, `Callstack`.
pub(crate) mod profile {
    pub(crate) const MAPPING_IID: u32 = 1;
    pub(crate) const MAPPING_BUILD_ID: u32 = 2;
    pub(crate) const MAPPING_START_OFFSET: u32 = 3;
    pub(crate) const MAPPING_START: u32 = 4;
    pub(crate) const MAPPING_END: u32 = 5;
    pub(crate) const MAPPING_PATH_STRING_IDS: u32 = 7;
    pub(crate) const MAPPING_EXACT_OFFSET: u32 = 8;
    pub(crate) const FRAME_IID: u32 = 1;
    pub(crate) const FRAME_FUNCTION_NAME_ID: u32 = 2;
    pub(crate) const FRAME_MAPPING_ID: u32 = 3;
    pub(crate) const FRAME_REL_PC: u32 = 4;
    pub(crate) const FRAME_SOURCE_PATH_IID: u32 = 5;
    pub(crate) const FRAME_LINE_NUMBER: u32 = 6;
    pub(crate) const CALLSTACK_IID: u32 = 1;
    pub(crate) const CALLSTACK_FRAME_IDS: u32 = 2;
}
