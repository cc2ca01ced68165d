"""Decodes a Perfetto trace written by `fdr export --format perfetto` and checks it.

The decoder is Perfetto's own: the protobuf classes that the `perfetto` package on PyPI
generates from Perfetto's `protos/perfetto/trace/perfetto_trace.proto`
(`perfetto.protos.perfetto.trace.perfetto_trace_pb2`), on Google's `protobuf` runtime.
Nothing here knows fdr's encoder.

Usage: check_trace.py TRACE SUMMARY_JSON

Checks, failing with the packet index and what is wrong:
- every packet is on one trusted packet sequence; the first clears its incremental state,
  and every packet that defines or uses interned data says it needs that state;
- every interned id is defined before use and never redefined to another string;
- one process track; thread tracks of that pid, each a distinct tid with a name; counter
  tracks under the process; async tracks (tasks) under the process, and their children
  (phases); every event is on a described track of the right kind;
- at most one clock snapshot, with the trace clock (BOOTTIME) and the wall clock
  (REALTIME);
- timestamps never decrease in file order, but for the OS state slices, which are
  written when their interval closes: those never decrease on their own track; and for
  callstack samples, which are written when recorded at the moment they were taken
  (earlier: a CPU sample waits for the sampler), and are not ordered;
- each OS state track is a named child of a thread track, and its slices are named by a
  thread state and carry the interval's on-CPU, run-queue and off-CPU ns, which add up to
  the slice's duration;
- every callstack sample is on a described thread, and its callstack, frames, mappings
  and strings are interned before use;
- on each track, slice ends match begins (a stack), and no slice is left open;
- every flow starts once, on a wake instant, and ends at most once, on a later poll of
  the woken task.

Writes what it decoded to SUMMARY_JSON for the Rust test to compare with the fdr trace.
"""

import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

CLEARED = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
NEEDS = pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
TE = pb.TrackEvent


class Bad(Exception):
    pass


def intern(table, entries, value_of, what):
    for e in entries:
        if e.iid == 0:
            raise Bad(f"{what} entry with iid 0")
        v = value_of(e)
        if table.get(e.iid, v) != v:
            raise Bad(f"{what} iid {e.iid} redefined: {table[e.iid]!r} then {v!r}")
        table[e.iid] = v


def annotation_value(a, values):
    kind = a.WhichOneof("value")
    if kind == "string_value_iid":
        if a.string_value_iid not in values:
            raise Bad(f"string value iid {a.string_value_iid} not interned")
        return values[a.string_value_iid]
    if kind in ("uint_value", "bool_value", "string_value", "int_value", "double_value"):
        return getattr(a, kind)
    raise Bad(f"unexpected annotation value {kind}")


STATES = {"running", "runnable", "sleeping", "blocked"}


def fresh_profile_tables():
    return {"function_names": {}, "source_paths": {}, "mapping_paths": {}, "build_ids": {},
            "mappings": {}, "frames": {}, "callstacks": {}}


def intern_profile(prof, d):
    for table in ("function_names", "source_paths", "mapping_paths", "build_ids"):
        intern(prof[table], getattr(d, table), lambda e: e.str, table)
    for m in d.mappings:
        if m.build_id and m.build_id not in prof["build_ids"]:
            raise Bad(f"mapping {m.iid}: build id iid {m.build_id} not interned")
        for s in m.path_string_ids:
            if s not in prof["mapping_paths"]:
                raise Bad(f"mapping {m.iid}: path iid {s} not interned")
        if not m.start < m.end:
            raise Bad(f"mapping {m.iid}: empty range")
        path = "/" + "/".join(prof["mapping_paths"][s].decode() for s in m.path_string_ids)
        intern(prof["mappings"], [m], lambda e: (path, e.start, e.end), "mapping")
    for fr in d.frames:
        if fr.function_name_id not in prof["function_names"]:
            raise Bad(f"frame {fr.iid}: function name iid {fr.function_name_id} not interned")
        if fr.mapping_id and fr.mapping_id not in prof["mappings"]:
            raise Bad(f"frame {fr.iid}: mapping {fr.mapping_id} not interned")
        if fr.source_path_iid and fr.source_path_iid not in prof["source_paths"]:
            raise Bad(f"frame {fr.iid}: source path {fr.source_path_iid} not interned")
        value = {
            "function": prof["function_names"][fr.function_name_id].decode(),
            "file": prof["source_paths"][fr.source_path_iid].decode()
            if fr.source_path_iid else None,
            "line": fr.line_number if fr.HasField("line_number") else None,
            "mapping": prof["mappings"][fr.mapping_id][0] if fr.mapping_id else None,
            "rel_pc": fr.rel_pc,
        }
        intern(prof["frames"], [fr], lambda e: json.dumps(value), "frame")
    for c in d.callstacks:
        for f in c.frame_ids:
            if f not in prof["frames"]:
                raise Bad(f"callstack {c.iid}: frame {f} not interned")
        intern(prof["callstacks"], [c], lambda e: tuple(e.frame_ids), "callstack")


def callstack(prof, iid):
    if iid not in prof["callstacks"]:
        raise Bad(f"callstack iid {iid} not interned")
    return [json.loads(prof["frames"][f]) for f in prof["callstacks"][iid]]


def check_state(s):
    if s["name"] not in STATES or s["cat"] != "os":
        raise Bad(f"state slice {s['name']!r} in category {s['cat']!r}")
    a = s["args"]
    parts = [a.get("on-CPU ns"), a.get("waiting for a CPU ns"), a.get("off-CPU ns")]
    if any(x is None for x in parts) or "state" not in a:
        raise Bad(f"state slice without its parts: {a}")
    if sum(parts) != s["dur"]:
        raise Bad(f"state slice parts {parts} do not add up to its {s['dur']} ns")


def check(path):
    trace = pb.Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())
    if not trace.packet:
        raise Bad("no packets")

    names, categories, arg_names, values = {}, {}, {}, {}
    prof = fresh_profile_tables()
    sequence = None
    state_valid = False
    process = None
    tracks = {}  # uuid -> {"kind": "thread"|"counter", ...}
    tids = {}
    stacks = {}  # track uuid -> [open slice]
    slices, instants, counters = [], [], []
    states, samples = [], []
    state_ts = {}  # os state track uuid -> last timestamp
    task_slices = []
    clock = None
    flow_start, flow_end = {}, {}
    last_ts = None
    packet_count = 0

    for i, p in enumerate(trace.packet):
        packet_count += 1
        try:
            if not p.HasField("trusted_packet_sequence_id"):
                raise Bad("no trusted_packet_sequence_id")
            if sequence is None:
                sequence = p.trusted_packet_sequence_id
                if not (p.sequence_flags & CLEARED):
                    raise Bad("the first packet does not clear incremental state")
            elif p.trusted_packet_sequence_id != sequence:
                raise Bad(f"second sequence {p.trusted_packet_sequence_id}")
            if p.sequence_flags & CLEARED:
                names, categories, arg_names, values = {}, {}, {}, {}
                prof = fresh_profile_tables()
                state_valid = True
            state_track = (
                p.WhichOneof("data") == "track_event"
                and tracks.get(p.track_event.track_uuid, {}).get("kind") == "os_state"
            )
            perf_sample = p.WhichOneof("data") == "perf_sample"
            if p.HasField("timestamp") and not perf_sample:
                if state_track:
                    u = p.track_event.track_uuid
                    if p.timestamp < state_ts.get(u, 0):
                        raise Bad(f"state timestamp {p.timestamp} after {state_ts[u]}")
                    state_ts[u] = p.timestamp
                else:
                    if last_ts is not None and p.timestamp < last_ts:
                        raise Bad(f"timestamp {p.timestamp} after {last_ts}")
                    last_ts = p.timestamp
            if p.HasField("interned_data"):
                if not (p.sequence_flags & NEEDS) or not state_valid:
                    raise Bad("interned data without SEQ_NEEDS_INCREMENTAL_STATE")
                d = p.interned_data
                intern(names, d.event_names, lambda e: e.name, "event name")
                intern(categories, d.event_categories, lambda e: e.name, "category")
                intern(arg_names, d.debug_annotation_names, lambda e: e.name, "arg name")
                intern(
                    values,
                    d.debug_annotation_string_values,
                    lambda e: e.str.decode("utf-8"),
                    "string value",
                )
                intern_profile(prof, d)

            data = p.WhichOneof("data")
            if data == "clock_snapshot":
                if clock is not None:
                    raise Bad("a second clock snapshot")
                c = {k.clock_id: k.timestamp for k in p.clock_snapshot.clocks}
                if set(c) != {pb.BUILTIN_CLOCK_BOOTTIME, pb.BUILTIN_CLOCK_REALTIME}:
                    raise Bad(f"clock snapshot of clocks {sorted(c)}")
                if p.clock_snapshot.primary_trace_clock != pb.BUILTIN_CLOCK_BOOTTIME:
                    raise Bad("the trace clock is not BOOTTIME")
                clock = {"trace": c[pb.BUILTIN_CLOCK_BOOTTIME], "realtime": c[pb.BUILTIN_CLOCK_REALTIME]}
            elif data == "track_descriptor":
                d = p.track_descriptor
                if d.uuid == 0:
                    raise Bad("track uuid 0")
                if d.HasField("process"):
                    if process is not None and process["uuid"] != d.uuid:
                        raise Bad("a second process track")
                    process = {
                        "uuid": d.uuid,
                        "pid": d.process.pid,
                        "name": d.process.process_name,
                    }
                elif d.HasField("thread"):
                    t = d.thread
                    if process is None or t.pid != process["pid"]:
                        raise Bad(f"thread track of pid {t.pid}, not the process's")
                    if not t.thread_name:
                        raise Bad(f"thread {t.tid} has no name")
                    old = tracks.get(d.uuid)
                    if old is not None and (old["kind"] != "thread" or old["tid"] != t.tid):
                        raise Bad(f"track {d.uuid} redescribed as another thread")
                    if tids.get(t.tid, d.uuid) != d.uuid:
                        raise Bad(f"tid {t.tid} has two tracks")
                    tids[t.tid] = d.uuid
                    tracks[d.uuid] = {"kind": "thread", "tid": t.tid, "name": t.thread_name}
                elif d.name and not d.HasField("counter") and d.parent_uuid and (
                    (process is not None and d.parent_uuid == process["uuid"])
                    or tracks.get(d.parent_uuid, {}).get("kind") == "async"
                ):
                    if d.uuid in tracks:
                        raise Bad(f"async track {d.uuid} described twice")
                    parent = tracks.get(d.parent_uuid)
                    tracks[d.uuid] = {
                        "kind": "async",
                        "name": d.name,
                        "task": parent["name"] if parent else d.name,
                        "phases": parent is not None,
                    }
                elif d.name and d.parent_uuid and tracks.get(d.parent_uuid, {}).get("kind") == "thread":
                    if d.uuid in tracks:
                        raise Bad(f"state track {d.uuid} described twice")
                    if d.name != "OS state":
                        raise Bad(f"thread child track named {d.name!r}")
                    tracks[d.uuid] = {"kind": "os_state", "tid": tracks[d.parent_uuid]["tid"]}
                elif d.HasField("counter"):
                    if process is None or d.parent_uuid != process["uuid"]:
                        raise Bad("counter track not under the process")
                    if not d.name or d.uuid in tracks:
                        raise Bad(f"counter track {d.uuid} unnamed or described twice")
                    tracks[d.uuid] = {"kind": "counter", "name": d.name}
                else:
                    raise Bad("track descriptor that is no process, thread or counter")
            elif data == "track_event":
                if not (p.sequence_flags & NEEDS) or not state_valid:
                    raise Bad("track event without SEQ_NEEDS_INCREMENTAL_STATE")
                if not p.HasField("timestamp"):
                    raise Bad("track event without timestamp")
                e = p.track_event
                ts = p.timestamp
                uuid = e.track_uuid
                on_process = process is not None and uuid == process["uuid"]
                track = tracks.get(uuid)
                if track is None and not on_process:
                    raise Bad(f"event on undescribed track {uuid}")
                field = e.WhichOneof("name_field")
                name = None
                if field == "name_iid":
                    if e.name_iid not in names:
                        raise Bad(f"event name iid {e.name_iid} not interned")
                    name = names[e.name_iid]
                elif field == "name":
                    name = e.name
                cats = []
                for c in e.category_iids:
                    if c not in categories:
                        raise Bad(f"category iid {c} not interned")
                    cats.append(categories[c])
                args = {}
                for a in e.debug_annotations:
                    if a.name_iid not in arg_names:
                        raise Bad(f"arg name iid {a.name_iid} not interned")
                    args[arg_names[a.name_iid]] = annotation_value(a, values)
                cat = cats[0] if cats else None
                tid = track["tid"] if track and track["kind"] in ("thread", "os_state") else None

                on_async = track is not None and track["kind"] == "async"
                if e.type == TE.TYPE_SLICE_BEGIN:
                    if (tid is None and not on_async) or not name or len(cats) != 1:
                        raise Bad("slice begin off a thread or task track, unnamed or uncategorised")
                    stacks.setdefault(uuid, []).append(
                        {"tid": tid, "cat": cat, "name": name, "ts": ts, "args": args}
                    )
                elif e.type == TE.TYPE_SLICE_END:
                    stack = stacks.get(uuid)
                    if not stack:
                        raise Bad(f"slice end with nothing open on track {uuid}")
                    s = stack.pop()
                    s["args"].update(args)
                    s["dur"] = ts - s["ts"]
                    if on_async:
                        s["track"] = track["task"]
                        s["phases"] = track["phases"]
                        task_slices.append(s)
                    elif state_track:
                        check_state(s)
                        states.append(s)
                    else:
                        slices.append(s)
                elif e.type == TE.TYPE_INSTANT:
                    if not name or len(cats) != 1:
                        raise Bad("instant unnamed or uncategorised")
                    instants.append(
                        {"tid": tid, "cat": cat, "name": name, "ts": ts, "args": args,
                         "process": on_process}
                    )
                elif e.type == TE.TYPE_COUNTER:
                    if track is None or track["kind"] != "counter":
                        raise Bad("counter value off a counter track")
                    if e.WhichOneof("counter_value_field") != "double_counter_value":
                        raise Bad("counter without a double value")
                    counters.append(
                        {"name": track["name"], "ts": ts, "value": e.double_counter_value}
                    )
                else:
                    raise Bad(f"event type {e.type}")

                for f in e.flow_ids:
                    if f in flow_start:
                        raise Bad(f"flow {f} starts twice")
                    if e.type != TE.TYPE_INSTANT or cat != "wake":
                        raise Bad(f"flow {f} starts on a {cat} event, not a wake")
                    flow_start[f] = {"ts": ts, "task": args.get("woken task")}
                for f in e.terminating_flow_ids:
                    start = flow_start.get(f)
                    if start is None or f in flow_end:
                        raise Bad(f"flow {f} ends without a start, or twice")
                    if e.type != TE.TYPE_SLICE_BEGIN or cat != "poll":
                        raise Bad(f"flow {f} ends on a {cat} event, not a poll")
                    if args.get("task") != start["task"] or ts < start["ts"]:
                        raise Bad(f"flow {f} ends on another task's poll, or before it starts")
                    flow_end[f] = ts
            elif data == "perf_sample":
                if not (p.sequence_flags & NEEDS) or not state_valid:
                    raise Bad("perf sample without SEQ_NEEDS_INCREMENTAL_STATE")
                s = p.perf_sample
                if process is None or s.pid != process["pid"] or s.tid not in tids:
                    raise Bad(f"perf sample of pid {s.pid} tid {s.tid}: no such thread track")
                samples.append(
                    {"tid": s.tid, "ts": p.timestamp, "frames": callstack(prof, s.callstack_iid)}
                )
            elif data is not None:
                raise Bad(f"unexpected packet data {data}")
            elif not p.HasField("interned_data"):
                raise Bad("empty packet")
        except Bad as b:
            raise SystemExit(f"{path}: packet {i}: {b}")

    left = {u: [s["name"] for s in st] for u, st in stacks.items() if st}
    if left:
        raise SystemExit(f"{path}: slices left open: {left}")
    if process is None:
        raise SystemExit(f"{path}: no process track")
    return {
        "packets": packet_count,
        "process": {"pid": process["pid"], "name": process["name"]},
        "threads": {str(t["tid"]): t["name"] for t in tracks.values() if t["kind"] == "thread"},
        "slices": slices,
        "instants": instants,
        "counters": counters,
        "task_slices": task_slices,
        "states": states,
        "samples": samples,
        "clock": clock,
        "flows_started": len(flow_start),
        "flows_ended": len(flow_end),
    }


if __name__ == "__main__":
    summary = check(sys.argv[1])
    with open(sys.argv[2], "w") as out:
        json.dump(summary, out)
