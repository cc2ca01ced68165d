//! The collected samples as a profile: symbolized locations, functions, mappings, the
//! string table, then protobuf and gzip.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use fdr_format::{Module, ProcessInfo, Tables};
use fdr_symbolize::{AddressKind, Symbolizer};

use crate::proto::Msg;
use crate::{Collector, Key, MAX_SYMBOLIZED_ADDRESSES, Values};

/// The name of the frame that ends a stack the recorder cut short.
pub(crate) const TRUNCATED_FRAME: &str = "[fdr: stack truncated]";
/// The name of the frame samples past the collector's bounds are counted under.
pub(crate) const FOLDED_FRAME: &str = "[fdr: more distinct stacks than the profile keeps]";

/// An encoded profile and what went into it.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile: `profile.proto`, gzipped (what `go tool pprof` reads).
    pub gzipped: Vec<u8>,
    /// CPU samples in it.
    pub cpu_samples: u64,
    /// Long-scope stacks in it (0 unless asked for).
    pub long_scope_stacks: u64,
    /// Distinct samples (stack, thread, task).
    pub distinct_samples: usize,
    /// Locations (distinct addresses).
    pub locations: usize,
    /// Locations with at least one source frame.
    pub symbolized_locations: usize,
    /// Whether CPU time is given (the rate was known).
    pub has_cpu_time: bool,
    /// What the profile's comments say: what was left out, modules not symbolized.
    pub notes: Vec<String>,
}

/// The string table: index 0 is "".
#[derive(Debug)]
struct Strings {
    list: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Strings {
            list: vec![String::new()],
            ids: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as i64;
        self.list.push(s.to_owned());
        self.ids.insert(s.to_owned(), i);
        i
    }
}

/// A location being built.
#[derive(Debug)]
struct Loc {
    mapping: u64,
    address: u64,
    /// (function id, line), innermost first.
    lines: Vec<(u64, i64)>,
}

/// A mapping being built: the module and what its locations resolved to.
#[derive(Debug)]
struct Map {
    module: Module,
    locations: u64,
    has_functions: bool,
    has_filenames: bool,
    has_lines: bool,
    has_inline: bool,
}

struct Builder<'t> {
    tables: &'t Tables,
    sym: Symbolizer,
    strings: Strings,
    functions: Vec<(i64, i64)>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<Loc>,
    /// (address, is the interrupted instruction) to location id.
    location_ids: HashMap<(u64, bool), u64>,
    /// Synthetic frames by name.
    synthetic: HashMap<&'static str, u64>,
    maps: Vec<Map>,
    /// Module start to mapping index.
    map_ids: HashMap<(u64, u64), usize>,
    symbolized: usize,
}

impl Builder<'_> {
    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.strings.id(name), self.strings.id(file));
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        self.functions.push(key);
        let id = self.functions.len() as u64;
        self.function_ids.insert(key, id);
        id
    }

    fn mapping(&mut self, m: &Module) -> usize {
        let key = (m.start, m.end);
        if let Some(&i) = self.map_ids.get(&key) {
            return i;
        }
        self.maps.push(Map {
            module: m.clone(),
            locations: 0,
            has_functions: false,
            has_filenames: false,
            has_lines: false,
            has_inline: false,
        });
        self.map_ids.insert(key, self.maps.len() - 1);
        self.maps.len() - 1
    }

    /// The location of `address` (`ip`: the interrupted instruction, else a return
    /// address), symbolized the first time.
    fn location(&mut self, address: u64, ip: bool) -> u64 {
        if let Some(&id) = self.location_ids.get(&(address, ip)) {
            return id;
        }
        let mut loc = Loc {
            mapping: 0,
            address,
            lines: Vec::new(),
        };
        let tables = self.tables;
        if let Some(m) = tables.module_of(address) {
            let mi = self.mapping(m);
            // Mapping ids are assigned when the mappings are ordered; index + 1 for now.
            loc.mapping = mi as u64 + 1;
            self.maps[mi].locations += 1;
            if self.symbolized < MAX_SYMBOLIZED_ADDRESSES {
                self.symbolized += 1;
                let kind = if ip {
                    AddressKind::InstructionPointer
                } else {
                    AddressKind::ReturnAddress
                };
                let s = self.sym.symbolize(m, address, kind);
                for f in &s.frames {
                    let name = f.function.as_deref().unwrap_or("??");
                    let file = f.file.as_deref().unwrap_or("");
                    let fid = self.function(name, file);
                    loc.lines.push((fid, f.line.map_or(0, i64::from)));
                    let map = &mut self.maps[mi];
                    map.has_functions |= f.function.is_some();
                    map.has_filenames |= f.file.is_some();
                    map.has_lines |= f.line.is_some();
                }
                self.maps[mi].has_inline |= s.frames.len() > 1;
            }
        }
        self.locations.push(loc);
        let id = self.locations.len() as u64;
        self.location_ids.insert((address, ip), id);
        id
    }

    /// A location with no address: one frame named `name`.
    fn synthetic(&mut self, name: &'static str) -> u64 {
        if let Some(&id) = self.synthetic.get(name) {
            return id;
        }
        let fid = self.function(name, "");
        self.locations.push(Loc {
            mapping: 0,
            address: 0,
            lines: vec![(fid, 0)],
        });
        let id = self.locations.len() as u64;
        self.synthetic.insert(name, id);
        id
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    z.write_all(bytes).expect("gzip into memory");
    z.finish().expect("gzip into memory")
}

fn file_name(path: &str) -> &str {
    Path::new(path.trim_end_matches(" (deleted)"))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

pub(crate) fn finish(
    c: Collector,
    tables: &Tables,
    info: &ProcessInfo,
    window: Option<(i64, i64)>,
) -> Profile {
    let mut notes = Vec::new();
    let stats = c.stats;
    let long_scopes = c.opts.long_scopes;
    let mut rates = c.rates;
    let mut entries: Vec<(Option<Key>, Values)> =
        c.samples.into_iter().map(|(k, v)| (Some(k), v)).collect();
    if c.folded != Values::default() {
        entries.push((None, c.folded));
    }
    // CPU samples recorded before the trace gave its rate (and with no fallback) take the
    // first rate it gave.
    let mut unrated = 0u64;
    for (_, v) in &mut entries {
        if v.cpu_unrated == 0 {
            continue;
        }
        unrated += v.cpu_unrated;
        if let Some(hz) = c.first_rate_hz {
            v.cpu_ns = v
                .cpu_ns
                .saturating_add(v.cpu_unrated.saturating_mul((1e9 / hz) as u64));
            *rates.entry(hz as u64).or_default() += v.cpu_unrated;
        }
    }
    match (unrated, c.first_rate_hz) {
        (0, _) => {}
        (n, Some(hz)) => notes.push(format!(
            "{n} CPU samples recorded before the trace gave its profiling rate are counted at its first rate, {hz} Hz"
        )),
        (n, None) => notes.push(format!(
            "the trace does not give its CPU profiling rate: {n} CPU samples are counted, without CPU time"
        )),
    }
    let has_cpu_time = !rates.is_empty();
    // The period: the rate most samples were taken at.
    let period_ns = rates
        .iter()
        .max_by_key(|(hz, n)| (**n, **hz))
        .map(|(hz, _)| 1_000_000_000 / (*hz).max(1));
    if rates.len() > 1 {
        let mut rs: Vec<_> = rates.keys().copied().collect();
        rs.sort_unstable();
        notes.push(format!(
            "CPU samples were taken at several rates ({} Hz): each counts 1/rate seconds of CPU",
            rs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    if stats.folded_samples > 0 {
        notes.push(format!(
            "{} samples past the profile's bounds ({} distinct stacks, {} addresses) are counted under {FOLDED_FRAME}",
            stats.folded_samples,
            crate::MAX_DISTINCT_SAMPLES,
            crate::MAX_STORED_FRAMES
        ));
    }
    if stats.other_labels > 0 {
        notes.push(format!(
            "{} samples name a thread or task past the profile's {} label values: labelled [other]",
            stats.other_labels,
            crate::MAX_LABELS
        ));
    }
    // Heaviest first, then by stack: the same trace gives the same bytes.
    entries.sort_by(|(ka, va), (kb, vb)| {
        let w = |v: &Values| v.cpu_samples.saturating_add(v.long_scopes);
        w(vb).cmp(&w(va)).then_with(|| ka.cmp(kb))
    });

    let mut b = Builder {
        tables,
        sym: Symbolizer::new(c.opts.symbolize.clone()),
        strings: Strings::new(),
        functions: Vec::new(),
        function_ids: HashMap::new(),
        locations: Vec::new(),
        location_ids: HashMap::new(),
        synthetic: HashMap::new(),
        maps: Vec::new(),
        map_ids: HashMap::new(),
        symbolized: 0,
    };
    let mut p = Msg::new();
    let mut types = vec![("samples", "count")];
    if has_cpu_time {
        types.push(("cpu", "nanoseconds"));
    }
    if long_scopes {
        types.push(("long_scope_stacks", "count"));
    }
    for (t, u) in &types {
        let mut vt = Msg::new();
        vt.int(1, b.strings.id(t));
        vt.int(2, b.strings.id(u));
        p.message(1, &vt);
    }
    let (thread_key, task_key) = (b.strings.id("thread"), b.strings.id("task"));
    let mut cpu_samples = 0u64;
    let mut long_scope_stacks = 0u64;
    let distinct_samples = entries.len();
    for (key, v) in &entries {
        let mut locs = Vec::new();
        match key {
            Some(k) => {
                for (i, &a) in k.frames.iter().enumerate() {
                    locs.push(b.location(a, i == 0));
                }
                if k.truncated {
                    locs.push(b.synthetic(TRUNCATED_FRAME));
                }
            }
            None => locs.push(b.synthetic(FOLDED_FRAME)),
        }
        if locs.is_empty() {
            locs.push(b.synthetic("[fdr: no frames]"));
        }
        cpu_samples += v.cpu_samples;
        long_scope_stacks += v.long_scopes;
        let mut values = vec![v.cpu_samples];
        if has_cpu_time {
            values.push(v.cpu_ns);
        }
        if long_scopes {
            values.push(v.long_scopes);
        }
        let mut s = Msg::new();
        s.packed(1, locs);
        s.packed(2, values.into_iter().map(|x| x.min(i64::MAX as u64)));
        if let Some(k) = key {
            let label = |key: i64, value: &str, s: &mut Msg, strings: &mut Strings| {
                let mut l = Msg::new();
                l.int(1, key);
                l.int(2, strings.id(value));
                s.message(3, &l);
            };
            label(
                thread_key,
                &c.labels[k.thread as usize],
                &mut s,
                &mut b.strings,
            );
            if k.task > 0 {
                label(
                    task_key,
                    &c.labels[k.task as usize - 1],
                    &mut s,
                    &mut b.strings,
                );
            }
        }
        p.message(2, &s);
    }

    // Mappings: the program's first (pprof takes mapping 0 as the main binary), then by
    // how many locations they hold.
    let mut order: Vec<usize> = (0..b.maps.len()).collect();
    let program = info.program.as_str();
    order.sort_by_key(|&i| {
        let m = &b.maps[i];
        let main = !program.is_empty() && file_name(&m.module.path) == program;
        (!main, std::cmp::Reverse(m.locations), m.module.start)
    });
    let mut new_id = vec![0u64; b.maps.len()];
    for (pos, &i) in order.iter().enumerate() {
        new_id[i] = pos as u64 + 1;
    }
    for &i in &order {
        let m = &b.maps[i];
        if !m.has_functions {
            let module = m.module.clone();
            let why = b.sym.module_problem(&module).map_or_else(
                || "no symbols for its addresses".to_owned(),
                |p| p.to_string(),
            );
            notes.push(format!("not symbolized: {}: {why}", module.path));
        }
        let m = &b.maps[i];
        let mut mm = Msg::new();
        mm.uint(1, new_id[i]);
        mm.uint(2, m.module.start);
        mm.uint(3, m.module.end);
        mm.uint(4, m.module.file_offset);
        let (path, id) = (m.module.path.clone(), m.module.build_id_hex());
        let flags = [m.has_functions, m.has_filenames, m.has_lines, m.has_inline];
        mm.int(5, b.strings.id(&path));
        mm.int(6, b.strings.id(&id));
        for (f, v) in (7..=10).zip(flags) {
            mm.bool(f, v);
        }
        p.message(3, &mm);
    }
    let symbolized_locations = b.locations.iter().filter(|l| !l.lines.is_empty()).count();
    for (i, l) in b.locations.iter().enumerate() {
        let mut lm = Msg::new();
        lm.uint(1, i as u64 + 1);
        if l.mapping > 0 {
            lm.uint(2, new_id[l.mapping as usize - 1]);
        }
        lm.uint(3, l.address);
        for &(fid, line) in &l.lines {
            let mut ln = Msg::new();
            ln.uint(1, fid);
            ln.int(2, line);
            lm.message(4, &ln);
        }
        p.message(4, &lm);
    }
    for (i, &(name, file)) in b.functions.iter().enumerate() {
        let mut f = Msg::new();
        f.uint(1, i as u64 + 1);
        f.int(2, name);
        f.int(3, name);
        f.int(4, file);
        p.message(5, &f);
    }
    let (start_ns, duration_ns) = window.unwrap_or_else(|| span(&c.first_ts, &c.last_ts, tables));
    p.int(9, start_ns);
    p.int(10, duration_ns);
    if let Some(period) = period_ns {
        let mut pt = Msg::new();
        pt.int(1, b.strings.id("cpu"));
        pt.int(2, b.strings.id("nanoseconds"));
        p.message(11, &pt);
        p.int(12, period as i64);
    }
    let comments: Vec<u64> = notes.iter().map(|n| b.strings.id(n) as u64).collect();
    p.packed(13, comments);
    let default_type = if has_cpu_time { "cpu" } else { "samples" };
    p.int(14, b.strings.id(default_type));
    for s in &b.strings.list {
        p.bytes(6, s.as_bytes());
    }
    Profile {
        gzipped: gzip(&p.into_bytes()),
        cpu_samples,
        long_scope_stacks,
        distinct_samples,
        locations: b.locations.len(),
        symbolized_locations,
        has_cpu_time,
        notes,
    }
}

/// The wall-clock start (Unix ns) and length (ns) of the ticks `first..=last`, through the
/// trace's clock; zeros without one.
fn span(first: &Option<u64>, last: &Option<u64>, tables: &Tables) -> (i64, i64) {
    match (first, last, tables.first_clock()) {
        (Some(f), Some(l), Some(clock)) => {
            let start = clock.wall_ns(*f).clamp(0, i64::MAX as i128) as i64;
            let len = clock
                .ticks_to_ns_signed(*l)
                .saturating_sub(clock.ticks_to_ns_signed(*f))
                .clamp(0, i64::MAX as i128) as i64;
            (start, len)
        }
        _ => (0, 0),
    }
}
