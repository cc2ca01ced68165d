//! fdr's symbolizer: the raw addresses of a trace's stack samples to functions, source files
//! and lines (inlined frames included), through the trace's module records.
//!
//! A stack sample (`EventKind::Stack`) holds addresses of the recorded process; the trace's
//! tables hold the executable mappings those addresses fall in (`Tables::modules()`: start,
//! end, file offset, path, ELF build id). [`Symbolizer`] maps an address to its module, the
//! module's file offset to the address the file's own debug information uses (through its
//! program headers), and looks that up in the file's DWARF line tables. The file is the
//! module's recorded path, or one the caller points to ([`Options::binaries`],
//! [`Options::search_dirs`], searched first), so a dump symbolizes on another machine with
//! the same binaries; a file whose build id differs from the trace's is not used, and
//! [`Problem::BuildIdMismatch`] says so.
//!
//! Lookups go through `addr2line` (gimli's DWARF reader, with `object` for the ELF file):
//! the symbolizer the Rust standard library's backtraces are built on, well kept, reading
//! line tables lazily (a release build with `debug = "line-tables-only"` is enough), split
//! DWARF and compressed sections included, demangling Rust and C++ names. It falls back to
//! the ELF symbol table for a function without debug information (libc, say).
//!
//! Memory is bounded: at most [`Options::max_loaded_modules`] files are open at once (least
//! recently used first out), and at most [`MAX_KNOWN_MODULES`] modules are remembered.
//!
//! ```no_run
//! use fdr_format::{Batch, Decoder, EventKind, Tables};
//! use fdr_symbolize::{Options, Symbolizer};
//!
//! let bytes = std::fs::read("dump.fdr")?;
//! let mut d = Decoder::new(&bytes[..])?;
//! let mut tables = Tables::new();
//! let mut sym = Symbolizer::new(Options::default());
//! while let Some(batch) = d.next_batch() {
//!     match batch? {
//!         Batch::Table(t) => tables.apply(&t)?,
//!         Batch::Events(b) => {
//!             for event in b.events() {
//!                 if let EventKind::Stack { frames, .. } = event?.kind {
//!                     for f in sym.symbolize_stack(&tables, frames.iter()) {
//!                         println!("{f}");
//!                     }
//!                 }
//!             }
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fdr_format::{Module, Tables};
use object::{Object, ObjectSegment};

/// Most modules the symbolizer remembers (loaded or not); past it the least recently used
/// is forgotten.
pub const MAX_KNOWN_MODULES: usize = 1024;

/// Where to find the modules' files, and how many to keep open.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files to use for modules, matched by build id (or, for a module without one, by file
    /// name): the program's binary kept from the build, say.
    pub binaries: Vec<PathBuf>,
    /// Directories searched for a module's file: `DIR/.build-id/ab/cdef….debug` (by build
    /// id, as debuginfo packages lay them out), then `DIR/<file name>`.
    pub search_dirs: Vec<PathBuf>,
    /// Also try each module's path as the recorded process saw it (after the above).
    pub use_recorded_paths: bool,
    /// Most module files open at once.
    pub max_loaded_modules: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            binaries: Vec::new(),
            search_dirs: Vec::new(),
            use_recorded_paths: true,
            max_loaded_modules: 8,
        }
    }
}

/// Whether an address is where a thread was interrupted or where a call returns to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// The interrupted instruction (a stack's first frame): looked up as is.
    InstructionPointer,
    /// A return address (every later frame): looked up at `address - 1`, inside the call.
    ReturnAddress,
}

/// One source-level frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The function, demangled (without Rust's hash suffix).
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
    /// The column.
    pub column: Option<u32>,
    /// The function was inlined into the next frame (same address).
    pub inlined: bool,
}

/// Why an address could not be (fully) symbolized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The trace has no module record holding the address.
    #[error("no module of the trace holds this address")]
    NoModule,
    /// No file was found for the module.
    #[error("no file found for {path} (tried: {tried})")]
    FileNotFound {
        /// The module's recorded path.
        path: String,
        /// The places tried.
        tried: String,
    },
    /// A file was found, but its build id is not the trace's: a different build.
    #[error("{file} has build id {found}, the trace's {path} has {expected}: not the same build")]
    BuildIdMismatch {
        /// The module's recorded path.
        path: String,
        /// The file tried.
        file: String,
        /// The trace's build id (hex).
        expected: String,
        /// The file's build id (hex).
        found: String,
    },
    /// The file could not be read as an object file.
    #[error("{file}: {error}")]
    Unreadable {
        /// The file.
        file: String,
        /// What went wrong.
        error: String,
    },
    /// The address is in none of the file's loadable segments.
    #[error("the address is outside {file}'s loadable segments")]
    OutsideFile {
        /// The file.
        file: String,
    },
    /// The file has neither debug information nor a symbol for the address.
    #[error("{file} has no debug information or symbol for this address")]
    NoInfo {
        /// The file.
        file: String,
    },
}

/// One address, symbolized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbolized {
    /// The address as recorded.
    pub address: u64,
    /// The module's recorded path, if a module holds the address.
    pub module: Option<String>,
    /// Source frames, innermost first: inlined functions, then the function that holds the
    /// address. Empty if nothing was found.
    pub frames: Vec<Frame>,
    /// Why frames are missing, if they are.
    pub problem: Option<Problem>,
}

impl fmt::Display for Symbolized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.address)?;
        if self.frames.is_empty() {
            if let Some(m) = &self.module {
                write!(f, " in {m}")?;
            }
            if let Some(p) = &self.problem {
                write!(f, " ({p})")?;
            }
            return Ok(());
        }
        for (i, fr) in self.frames.iter().enumerate() {
            if i > 0 {
                write!(f, "\n        ")?;
            }
            write!(f, " {}", fr.function.as_deref().unwrap_or("??"))?;
            if let Some(file) = &fr.file {
                write!(f, " at {file}")?;
                if let Some(l) = fr.line {
                    write!(f, ":{l}")?;
                }
            }
            if fr.inlined {
                write!(f, " (inlined)")?;
            }
        }
        Ok(())
    }
}

/// A module file, loaded.
struct Loaded {
    file: String,
    segments: Segments,
    loader: addr2line::Loader,
}

enum State {
    Loaded(Box<Loaded>),
    Failed(Problem),
    /// Was loaded, closed to stay within `max_loaded_modules`; reloaded on use.
    Closed,
}

struct Entry {
    state: State,
    last_used: u64,
}

/// Symbolizes addresses through a trace's module records (see the crate docs).
pub struct Symbolizer {
    options: Options,
    /// By (recorded path, build id).
    modules: HashMap<(String, Vec<u8>), Entry>,
    /// Build ids of [`Options::binaries`], read once.
    binary_ids: Option<Vec<(PathBuf, Option<Vec<u8>>)>>,
    clock: u64,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbolizer")
            .field("options", &self.options)
            .field("modules", &self.modules.len())
            .finish()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Loadable segments of a file: file offset range and the address of its first byte.
type Segments = Vec<(Range<u64>, u64)>;

/// The build id and loadable segments of an object file.
fn read_ids(path: &Path) -> Result<(Option<Vec<u8>>, Segments), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let cache = object::ReadCache::new(file);
    let obj = object::File::parse(&cache).map_err(|e| e.to_string())?;
    let id = obj
        .build_id()
        .map_err(|e| e.to_string())?
        .map(<[u8]>::to_vec);
    let segments = obj
        .segments()
        .map(|s| {
            let (off, size) = s.file_range();
            (off..off + size, s.address())
        })
        .collect();
    Ok((id, segments))
}

impl Symbolizer {
    /// A symbolizer with nothing loaded yet.
    pub fn new(options: Options) -> Self {
        Symbolizer {
            options,
            modules: HashMap::new(),
            binary_ids: None,
            clock: 0,
        }
    }

    /// Symbolizes a stack (innermost first: the interrupted instruction, then return
    /// addresses) through `tables`' module records.
    pub fn symbolize_stack(
        &mut self,
        tables: &Tables,
        frames: impl IntoIterator<Item = u64>,
    ) -> Vec<Symbolized> {
        frames
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let kind = if i == 0 {
                    AddressKind::InstructionPointer
                } else {
                    AddressKind::ReturnAddress
                };
                match tables.module_of(a) {
                    Some(m) => self.symbolize(m, a, kind),
                    None => Symbolized {
                        address: a,
                        module: None,
                        frames: Vec::new(),
                        problem: Some(Problem::NoModule),
                    },
                }
            })
            .collect()
    }

    /// Symbolizes `address`, which `module` holds.
    pub fn symbolize(&mut self, module: &Module, address: u64, kind: AddressKind) -> Symbolized {
        let mut out = Symbolized {
            address,
            module: Some(module.path.clone()),
            frames: Vec::new(),
            problem: None,
        };
        if !module.contains(address) {
            out.problem = Some(Problem::NoModule);
            return out;
        }
        let probe_addr = match kind {
            AddressKind::InstructionPointer => address,
            AddressKind::ReturnAddress => address.saturating_sub(1).max(module.start),
        };
        let loaded = match self.load(module) {
            Ok(l) => l,
            Err(p) => {
                out.problem = Some(p);
                return out;
            }
        };
        let offset = module.file_offset_of(probe_addr);
        let Some(svma) = loaded
            .segments
            .iter()
            .find(|(r, _)| r.contains(&offset))
            .map(|(r, vaddr)| vaddr + (offset - r.start))
        else {
            out.problem = Some(Problem::OutsideFile {
                file: loaded.file.clone(),
            });
            return out;
        };
        if let Ok(mut it) = loaded.loader.find_frames(svma) {
            while let Ok(Some(f)) = it.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map(|n| n.into_owned());
                let (file, line, column) = match &f.location {
                    Some(l) => (l.file.map(str::to_owned), l.line, l.column),
                    None => (None, None, None),
                };
                out.frames.push(Frame {
                    function,
                    file,
                    line,
                    column,
                    inlined: true,
                });
                if out.frames.len() >= 64 {
                    break;
                }
            }
        }
        if let Some(last) = out.frames.last_mut() {
            last.inlined = false;
        }
        let named = out.frames.iter().any(|f| f.function.is_some());
        if !named && let Some(sym) = loaded.loader.find_symbol(svma) {
            let name = addr2line::demangle_auto(std::borrow::Cow::Borrowed(sym), None).into_owned();
            match out.frames.last_mut() {
                Some(f) => f.function = Some(name),
                None => out.frames.push(Frame {
                    function: Some(name),
                    ..Frame::default()
                }),
            }
        }
        if out.frames.is_empty() {
            out.problem = Some(Problem::NoInfo {
                file: loaded.file.clone(),
            });
        }
        out
    }

    /// The problem that keeps `module` from being symbolized, if any (loading it if needed).
    pub fn module_problem(&mut self, module: &Module) -> Option<Problem> {
        self.load(module).err()
    }

    fn load(&mut self, module: &Module) -> Result<&Loaded, Problem> {
        self.clock += 1;
        let key = (module.path.clone(), module.build_id.clone());
        let needs_load = match self.modules.get(&key) {
            None => true,
            Some(e) => matches!(e.state, State::Closed),
        };
        if needs_load {
            let state = match self.open(module) {
                Ok(l) => State::Loaded(Box::new(l)),
                Err(p) => State::Failed(p),
            };
            if matches!(state, State::Loaded(_)) {
                self.close_to_fit();
            }
            if !self.modules.contains_key(&key) && self.modules.len() >= MAX_KNOWN_MODULES {
                self.forget_oldest();
            }
            self.modules.insert(
                key.clone(),
                Entry {
                    state,
                    last_used: self.clock,
                },
            );
        }
        let e = self.modules.get_mut(&key).expect("inserted above");
        e.last_used = self.clock;
        match &e.state {
            State::Loaded(l) => Ok(l),
            State::Failed(p) => Err(p.clone()),
            State::Closed => unreachable!("reloaded above"),
        }
    }

    /// Closes the least recently used loaded modules until one more fits.
    fn close_to_fit(&mut self) {
        let max = self.options.max_loaded_modules.max(1);
        loop {
            let loaded = self
                .modules
                .values()
                .filter(|e| matches!(e.state, State::Loaded(_)))
                .count();
            if loaded < max {
                return;
            }
            let oldest = self
                .modules
                .values_mut()
                .filter(|e| matches!(e.state, State::Loaded(_)))
                .min_by_key(|e| e.last_used);
            match oldest {
                Some(e) => e.state = State::Closed,
                None => return,
            }
        }
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .modules
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.modules.remove(&k);
        }
    }

    /// Where `module`'s file may be, in the order tried.
    fn candidates(&mut self, module: &Module) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let name = Path::new(module.path.trim_end_matches(" (deleted)"))
            .file_name()
            .map(|n| n.to_owned());
        let binaries = self.binary_ids.get_or_insert_with(|| {
            self.options
                .binaries
                .iter()
                .map(|p| (p.clone(), read_ids(p).ok().and_then(|r| r.0)))
                .collect()
        });
        for (p, id) in binaries.iter() {
            let by_id = !module.build_id.is_empty() && id.as_deref() == Some(&module.build_id[..]);
            let by_name = module.build_id.is_empty() && p.file_name() == name.as_deref();
            if by_id || by_name {
                out.push(p.clone());
            }
        }
        for dir in &self.options.search_dirs {
            if module.build_id.len() > 1 {
                let h = hex(&module.build_id);
                out.push(
                    dir.join(".build-id")
                        .join(&h[..2])
                        .join(format!("{}.debug", &h[2..])),
                );
            }
            if let Some(n) = &name {
                out.push(dir.join(n));
            }
        }
        if self.options.use_recorded_paths {
            out.push(PathBuf::from(&module.path));
        }
        out
    }

    fn open(&mut self, module: &Module) -> Result<Loaded, Problem> {
        let candidates = self.candidates(module);
        let mut first_problem = None;
        for c in &candidates {
            if !c.is_file() {
                continue;
            }
            let file = c.display().to_string();
            let (id, segments) = match read_ids(c) {
                Ok(r) => r,
                Err(error) => {
                    first_problem.get_or_insert(Problem::Unreadable { file, error });
                    continue;
                }
            };
            let id = id.unwrap_or_default();
            if !module.build_id.is_empty() && id != module.build_id {
                first_problem.get_or_insert(Problem::BuildIdMismatch {
                    path: module.path.clone(),
                    file,
                    expected: hex(&module.build_id),
                    found: hex(&id),
                });
                continue;
            }
            match addr2line::Loader::new(c) {
                Ok(loader) => {
                    return Ok(Loaded {
                        file,
                        segments,
                        loader,
                    });
                }
                Err(e) => {
                    first_problem.get_or_insert(Problem::Unreadable {
                        file,
                        error: e.to_string(),
                    });
                }
            }
        }
        Err(first_problem.unwrap_or_else(|| Problem::FileNotFound {
            path: module.path.clone(),
            tried: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }))
    }
}
