"""Reads a gzipped pprof profile with protobuf's Python runtime and classes generated from
the published profile.proto, checks the references between its messages, and prints a JSON
summary (sample types, totals, mappings, samples with their frames, flat and cumulative
weights per function) for the Rust tests to assert on.

usage: read_pprof.py PROFILE.pb.gz   (profile_pb2 must be importable)
"""

import gzip
import json
import sys

import profile_pb2


def fail(why):
    print(f"read_pprof: {why}", file=sys.stderr)
    sys.exit(1)


def main():
    raw = open(sys.argv[1], "rb").read()
    if raw[:2] != b"\x1f\x8b":
        fail("not gzipped")
    p = profile_pb2.Profile()
    p.ParseFromString(gzip.decompress(raw))
    st = list(p.string_table)
    if not st or st[0] != "":
        fail("string_table[0] is not the empty string")

    def s(i):
        if not 0 <= i < len(st):
            fail(f"string index {i} out of range ({len(st)})")
        return st[i]

    types = [[s(t.type), s(t.unit)] for t in p.sample_type]
    functions = {}
    for f in p.function:
        if f.id == 0 or f.id in functions:
            fail(f"function id {f.id} zero or repeated")
        functions[f.id] = {"name": s(f.name), "system_name": s(f.system_name), "file": s(f.filename)}
    mappings = {}
    for m in p.mapping:
        if m.id == 0 or m.id in mappings:
            fail(f"mapping id {m.id} zero or repeated")
        mappings[m.id] = {
            "id": m.id, "start": m.memory_start, "limit": m.memory_limit,
            "offset": m.file_offset, "filename": s(m.filename), "build_id": s(m.build_id),
            "has_functions": m.has_functions, "has_filenames": m.has_filenames,
            "has_line_numbers": m.has_line_numbers, "has_inline_frames": m.has_inline_frames,
        }
    locations = {}
    for l in p.location:
        if l.id == 0 or l.id in locations:
            fail(f"location id {l.id} zero or repeated")
        if l.mapping_id:
            m = mappings.get(l.mapping_id) or fail(f"location {l.id}: no mapping {l.mapping_id}")
            if not m["start"] <= l.address < m["limit"]:
                fail(f"location {l.id}: address {l.address:#x} outside mapping {l.mapping_id}")
        lines = []
        for ln in l.line:
            f = functions.get(ln.function_id) or fail(f"location {l.id}: no function {ln.function_id}")
            lines.append({"function": f["name"], "file": f["file"], "line": ln.line})
        locations[l.id] = {"address": l.address, "mapping": l.mapping_id, "lines": lines}

    weight_index = len(types) - 1
    if p.default_sample_type:
        name = s(p.default_sample_type)
        idx = [i for i, t in enumerate(types) if t[0] == name]
        if not idx:
            fail(f"default sample type {name} is not a sample type")
        weight_index = idx[0]
    totals = [0] * len(types)
    flat, cum = {}, {}
    samples = []
    for smp in p.sample:
        if len(smp.value) != len(types):
            fail(f"a sample has {len(smp.value)} values for {len(types)} types")
        frames = []
        for lid in smp.location_id:
            loc = locations.get(lid) or fail(f"a sample names location {lid}, which does not exist")
            frames.append(loc["lines"])
        for i, v in enumerate(smp.value):
            totals[i] += v
        w = smp.value[weight_index]
        names = [ln["function"] for loc in frames for ln in loc]
        if names:
            flat[names[0]] = flat.get(names[0], 0) + w
        for n in set(names):
            cum[n] = cum.get(n, 0) + w
        labels = {}
        for lb in smp.label:
            labels[s(lb.key)] = s(lb.str) if lb.str else lb.num
        samples.append({"values": list(smp.value), "labels": labels, "frames": frames})
    out = {
        "sample_types": types,
        "default_sample_type": s(p.default_sample_type),
        "period_type": [s(p.period_type.type), s(p.period_type.unit)],
        "period": p.period,
        "time_nanos": p.time_nanos,
        "duration_nanos": p.duration_nanos,
        "comments": [s(c) for c in p.comment],
        "totals": totals,
        "mappings": [mappings[k] for k in sorted(mappings)],
        "mapping_order": [m.id for m in p.mapping],
        "locations": len(locations),
        "samples": samples,
        "flat": flat,
        "cum": cum,
    }
    json.dump(out, sys.stdout)


main()
