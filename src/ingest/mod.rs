//! Ingest: raw extracts → the star-schema warehouse, every input row accounted for.
//!
//! - Input: a source contract ([`contract`]) and the files it names (or `--input` overrides):
//!   one file, a folder (its files in name order) or a glob per source.
//! - Output tables: `dim_customer`, `dim_product`, `dim_date`, `fact_sales`,
//!   `fact_campaign_contact`, `rejects`, `loads` (see [`build`]), plus `<warehouse>/loads.json`.
//! - Parameters: `--full-refresh` (rebuild from these files only), `--replace` (see below),
//!   `--max-reject-rate X`
//!   (default: no limit; a file whose rejected share exceeds X fails the load with exit code 1
//!   and leaves the warehouse unchanged).
//!
//! Per file: rows read = rows loaded + rows rejected + exact duplicates dropped. A file whose
//! SHA-256 is already in `loads` for the same source is skipped and reported (one file may
//! feed two sources, each loading it once); a different file with the name of an earlier
//! load's file is refused unless `--replace` (its earlier fact rows and rejects are removed
//! in the same commit). [`rollback`] removes a whole load.
//!
//! The flow of one file, in two threads: [`scan`] (csv crate or a line splitter: encoding,
//! record numbers, ragged lines, record digests, null tokens, columns by name or position)
//! hands chunks of raw text to the other thread, which drops exact duplicates
//! ([`scan::Repeats`]) and [`cleanse`]s them (polars: trim, types, rules → reason codes); the
//! good rows get their computed columns ([`compute`]: unit prices from line totals, costs,
//! customer-day baskets) and are staged as Parquet chunks. Then [`build`] merges the
//! dimensions and streams the staged chunks into the fact tables, and the whole load is
//! committed atomically. Memory holds a few chunks, the dimensions and the
//! duplicate-detection hashes (16 bytes per distinct record), never a whole file.

pub mod build;
pub mod cleanse;
pub mod compute;
pub mod contract;
pub mod reasons;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::warehouse::{Transaction, Warehouse, WriterLock, tables};
use contract::{Contract, Entity, Source};

/// Rows per polars chunk: big enough to amortise the plan, small enough to bound memory.
pub const DEFAULT_CHUNK_ROWS: usize = 256 * 1024;

/// Ingest parameters: `ecrm ingest`'s options and a pipeline `ingest` stage's keys, one type
/// for both.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// The source contract (TOML).
    #[arg(long)]
    pub contract: PathBuf,
    /// Fail (exit 1, warehouse unchanged) when a file's share of rejected rows exceeds this,
    /// between 0 and 1. Default: no limit.
    #[arg(long)]
    #[serde(default)]
    pub max_reject_rate: Option<f64>,
}

impl IngestParams {
    /// Checks each parameter (the contract is read by [`Contract::load`]).
    pub fn check(&self) -> Result<()> {
        check_reject_rate(self.max_reject_rate)
    }
}

/// A maximum reject rate is a share: between 0 and 1.
fn check_reject_rate(rate: Option<f64>) -> Result<()> {
    match rate {
        Some(r) if !(0.0..=1.0).contains(&r) => Err(Error::param(
            "max_reject_rate",
            format!("{r} is not between 0 and 1"),
        )),
        _ => Ok(()),
    }
}

/// How to run one ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// `--input` overrides: (source name or None for "the only source", path).
    pub inputs: Vec<(Option<String>, PathBuf)>,
    /// Rebuild the warehouse from these files alone.
    pub full_refresh: bool,
    /// Load a file whose name an earlier load used, with other content, in place of the
    /// earlier one (its fact rows and rejects are removed).
    pub replace: bool,
    /// Fail the load when a file's rejected share exceeds this (0..=1).
    pub max_reject_rate: Option<f64>,
    /// Rows per polars chunk (default [`DEFAULT_CHUNK_ROWS`]).
    pub chunk_rows: Option<usize>,
    /// Show a progress bar per file on stderr (the CLI sets it when stderr is a terminal and
    /// `--quiet` is off).
    pub progress: bool,
}

/// What became of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Loaded,
    /// The same content was loaded before, by load `previous_load` (or earlier in the same
    /// delivery).
    AlreadyLoaded,
}

impl FileStatus {
    pub fn name(self) -> &'static str {
        match self {
            FileStatus::Loaded => "loaded",
            FileStatus::AlreadyLoaded => "already_loaded",
        }
    }
}

/// Compares with the name the summary writes (`status == "loaded"`).
impl PartialEq<&str> for FileStatus {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// The outcome for one input file.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub source: String,
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub status: FileStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_load: Option<i64>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub duplicates: u64,
    /// Rejected rows by reason code.
    pub reasons: BTreeMap<String, u64>,
}

impl FileSummary {
    /// A file skipped because its content was loaded before (by `previous_load`, or earlier in
    /// this delivery when `None`).
    fn already_loaded(
        source: &Source,
        path: &Path,
        sha256: String,
        bytes: u64,
        previous_load: Option<i64>,
    ) -> Self {
        FileSummary {
            source: source.name.clone(),
            file: path.display().to_string(),
            sha256,
            bytes,
            status: FileStatus::AlreadyLoaded,
            previous_load,
            rows_read: 0,
            rows_loaded: 0,
            rows_rejected: 0,
            duplicates: 0,
            reasons: BTreeMap::new(),
        }
    }
}

/// The outcome of one ingest.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// The new load's id, or `None` when every file was already loaded.
    pub load_id: Option<i64>,
    pub files: Vec<FileSummary>,
    /// Row counts of the warehouse's tables after the load.
    pub tables: BTreeMap<String, u64>,
}

/// A file's cleansed rows and rejects, before the star schema is built.
pub struct FileLoad {
    pub source: Source,
    pub summary: FileSummary,
    /// Good rows (typed canonical columns, `__record`, `__line`, `__start`, `__end`; order
    /// lines only the columns `fact_sales` reads) staged in chunks, in record order.
    pub staged: Vec<PathBuf>,
    /// Rejected rows: record, line, raw, reason, detail.
    pub rejects: DataFrame,
    /// For order lines: what derived dimensions need, aggregated per chunk.
    pub derived: build::Derived,
}

impl FileLoad {
    /// `SOURCE/FILE_NAME`: how data files remember which input file their rows came from.
    pub fn source_file(&self) -> String {
        source_file(&self.source.name, Path::new(&self.summary.file))
    }

    /// The owner of the data files this file's rows go to.
    pub fn owner(&self, load_id: i64) -> crate::warehouse::Owner {
        crate::warehouse::Owner {
            load_id: Some(load_id as u64),
            source_file: Some(self.source_file()),
        }
    }

    /// All good rows in one frame (customer and product files, which are small).
    pub fn good(&self) -> Result<DataFrame> {
        let mut parts = self.staged.iter();
        let Some(first) = parts.next() else {
            return empty_good(&self.source);
        };
        let mut df = crate::warehouse::read_polars_file(first)?;
        for p in parts {
            df.vstack_mut(&crate::warehouse::read_polars_file(p)?)?;
        }
        Ok(df)
    }
}

/// Resolves a source path (file, folder or glob) to files in name order.
pub fn resolve_files(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let mut files: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| Error::input(path, format!("bad glob pattern: {e}")))?
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::input(path, "no file matches this pattern"));
        }
        return Ok(files);
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::input(path, "the folder has no files"));
        }
        Ok(files)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// `SOURCE/FILE_NAME` of an input file.
fn source_file(source: &str, path: &Path) -> String {
    format!("{source}/{}", file_name(path))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn source_names(contract: &Contract) -> String {
    let names: Vec<&str> = contract.sources.iter().map(|s| s.name.as_str()).collect();
    names.join(", ")
}

/// Runs one ingest into the warehouse at `root`: inputs resolved and checked before the
/// writer lock is taken; files hashed and sorted into new, already loaded and replacing;
/// then scanned and cleansed (phase 1), gated, and built into the star schema and committed
/// in one transaction (phase 2).
pub fn ingest(root: &Path, contract: &Contract, opts: &IngestOptions) -> Result<LoadSummary> {
    check_reject_rate(opts.max_reject_rate)?;
    let plan = input_files(contract, &opts.inputs)?;
    let lock = WriterLock::acquire(root, "ingest")?;
    let wh = Warehouse::open(root)?;
    let started = chrono::Utc::now();
    let history = History::read(&wh, opts.full_refresh)?;
    let triage = triage(&plan, &history, opts.replace)?;
    if triage.todo.is_empty() && !opts.full_refresh {
        for f in &triage.skipped {
            tracing::info!(file = %f.file, load = ?f.previous_load, "already loaded; nothing to do");
        }
        return Ok(LoadSummary {
            load_id: None,
            files: triage.skipped,
            tables: table_rows(&wh),
        });
    }
    let load_id = if opts.full_refresh {
        1
    } else {
        history.next_load_id
    };
    let base = (!opts.full_refresh).then_some(&wh);
    let sources = Sources::of(&plan);
    let mut known = known_ids(base, sources)?;

    // Phase 1: scan and cleanse every file, staging good rows chunk by chunk. Staged files
    // live in the transaction's staging folder and vanish with it if anything fails.
    let mut tx = wh.begin(&lock);
    let previous_loads = history.replace(&mut tx, &triage.replaced)?;
    let loads = scan_all(&mut tx, triage.todo, &mut known, sources, opts)?;
    reject_gate(&loads, opts.max_reject_rate)?;

    // Phase 2: dimensions, then facts streamed from the staged chunks.
    let finished = chrono::Utc::now();
    if opts.full_refresh {
        tx.clear();
    }
    let input = build::BuildInput {
        loads: &loads,
        load_id,
        started,
        finished,
        previous_loads: previous_loads.as_ref(),
        customer_source: sources.customers,
        product_source: sources.products,
        campaign_source: sources.campaigns,
    };
    build::build(&mut tx, base, &input)?;
    let refresh = if opts.full_refresh {
        " (full refresh)"
    } else {
        ""
    };
    let wh = Warehouse::commit(tx, &format!("ingest load {load_id}{refresh}"))?;
    build::write_loads_json(&wh)?;
    let mut files: Vec<FileSummary> = loads.into_iter().map(|l| l.summary).collect();
    files.extend(triage.skipped);
    Ok(LoadSummary {
        load_id: Some(load_id),
        files,
        tables: table_rows(&wh),
    })
}

/// Rows per table of a warehouse.
fn table_rows(wh: &Warehouse) -> BTreeMap<String, u64> {
    wh.snapshot()
        .tables
        .iter()
        .map(|(k, v)| (k.clone(), v.rows()))
        .collect()
}

/// Each source with its files: the contract's path, or the `--input` that replaces it.
fn input_files(
    contract: &Contract,
    inputs: &[(Option<String>, PathBuf)],
) -> Result<Vec<(Source, Vec<PathBuf>)>> {
    let mut overrides: HashMap<String, PathBuf> = HashMap::new();
    for (name, path) in inputs {
        let name = match name {
            Some(n) if contract.sources.iter().any(|s| &s.name == n) => n.clone(),
            Some(n) => {
                return Err(Error::param(
                    "input",
                    format!(
                        "no source {n:?} in {}; sources: {}",
                        contract.file.display(),
                        source_names(contract)
                    ),
                ));
            }
            None if contract.sources.len() == 1 => contract.sources[0].name.clone(),
            None => {
                return Err(Error::param(
                    "input",
                    format!(
                        "the contract has {} sources: write --input SOURCE=PATH (sources: {})",
                        contract.sources.len(),
                        source_names(contract)
                    ),
                ));
            }
        };
        overrides.insert(name, path.clone());
    }
    contract
        .sources
        .iter()
        .map(|s| {
            let path = overrides.get(&s.name).unwrap_or(&s.path);
            Ok((s.clone(), resolve_files(path)?))
        })
        .collect()
}

/// What earlier loads left: the `loads` table, and the files it knows by content and name.
struct History {
    /// The `loads` table (None on a full refresh, or before the first load).
    loads: Option<DataFrame>,
    /// (source, SHA-256) → the load that loaded it. A file's content is remembered per
    /// source: one flat file may feed two sources (its order lines, and its customers'
    /// attributes), and each must load it once.
    hashes: HashMap<(String, String), i64>,
    /// (source, file name) → the load that loaded a file of that name.
    names: HashMap<(String, String), i64>,
    next_load_id: i64,
}

impl History {
    fn read(wh: &Warehouse, full_refresh: bool) -> Result<History> {
        let loads = if full_refresh {
            None
        } else {
            wh.read_polars(tables::LOADS)?
        };
        let mut h = History {
            loads: None,
            hashes: HashMap::new(),
            names: HashMap::new(),
            next_load_id: 1,
        };
        if let Some(df) = &loads {
            let ids = df.column("load_id")?.i64()?;
            let hashes = df.column("sha256")?.str()?;
            let names = df.column("file_name")?.str()?;
            let sources = df.column("source")?.str()?;
            for i in 0..df.height() {
                let (Some(id), Some(sha), Some(name), Some(source)) =
                    (ids.get(i), hashes.get(i), names.get(i), sources.get(i))
                else {
                    continue;
                };
                h.hashes.insert((source.to_string(), sha.to_string()), id);
                h.names.insert((source.to_string(), name.to_string()), id);
                h.next_load_id = h.next_load_id.max(id + 1);
            }
        }
        h.loads = loads;
        Ok(h)
    }

    /// Removes the files a `--replace` replaces (their rows and their `loads` rows) in `tx`;
    /// returns the `loads` rows that stay.
    fn replace(
        self,
        tx: &mut Transaction<'_>,
        replaced: &[(i64, String)],
    ) -> Result<Option<DataFrame>> {
        let mut loads = self.loads;
        for (prev, file) in replaced {
            let removed = tx.remove_source_file(*prev as u64, file);
            tracing::info!(load = prev, file = %file, ?removed, "replacing an earlier delivery");
            if let Some(df) = loads.take() {
                let (source, name) = file.split_once('/').expect("SOURCE/FILE_NAME");
                let keep = df
                    .lazy()
                    .filter(
                        col("load_id")
                            .eq(lit(*prev))
                            .and(col("source").eq(lit(source)))
                            .and(col("file_name").eq(lit(name)))
                            .not(),
                    )
                    .collect()?;
                loads = Some(keep);
            }
        }
        Ok(loads)
    }
}

/// The input files sorted out: to load, skipped (already loaded), and the earlier files a
/// `--replace` removes as (load, `SOURCE/FILE_NAME`).
struct Triage {
    todo: Vec<(Source, PathBuf, String, u64)>,
    skipped: Vec<FileSummary>,
    replaced: Vec<(i64, String)>,
}

/// Hashes every input file and sorts it (see [`Triage`]); a changed re-delivery is refused
/// unless `replace`.
fn triage(plan: &[(Source, Vec<PathBuf>)], history: &History, replace: bool) -> Result<Triage> {
    let mut t = Triage {
        todo: Vec::new(),
        skipped: Vec::new(),
        replaced: Vec::new(),
    };
    let mut this_load: HashSet<(String, String)> = HashSet::new();
    for (source, files) in plan {
        for path in files {
            let clock = std::time::Instant::now();
            let (sha, bytes) = sha256_file(path)?;
            tracing::debug!(file = %path.display(), hash_ms = clock.elapsed().as_millis() as u64, "hashed");
            let key = (source.name.clone(), sha.clone());
            if let Some(&prev) = history.hashes.get(&key) {
                let s = FileSummary::already_loaded(source, path, sha, bytes, Some(prev));
                t.skipped.push(s);
                continue;
            }
            if let Some(prev) = history.names.get(&(source.name.clone(), file_name(path))) {
                check_replace(source, path, *prev, replace)?;
                t.replaced.push((*prev, source_file(&source.name, path)));
            }
            if !this_load.insert(key) {
                // The same content twice in one delivery: load it once.
                t.skipped
                    .push(FileSummary::already_loaded(source, path, sha, bytes, None));
                continue;
            }
            t.todo.push((source.clone(), path.clone(), sha, bytes));
        }
    }
    Ok(t)
}

/// A file with the name of an earlier load's file and other content may replace it only
/// with `--replace`, and only as facts (a dimension's rows are history).
fn check_replace(source: &Source, path: &Path, prev: i64, replace: bool) -> Result<()> {
    if !replace {
        return Err(Error::input(
            path,
            format!(
                "refused: a file with this name but different content was loaded by load {prev}; \
                 to load the corrected file in its place, add --replace"
            ),
        ));
    }
    if source.entity.is_dimension() {
        return Err(Error::input(
            path,
            format!(
                "--replace applies to fact files (order lines, contacts, consent events); {} rows are \
                 dimension history: load the corrected file under a new name and its values \
                 update the dimension",
                source.entity.name()
            ),
        ));
    }
    Ok(())
}

/// Which dimensions have a source of their own in this load (the others are derived from
/// the order lines).
#[derive(Debug, Clone, Copy)]
struct Sources {
    customers: bool,
    products: bool,
    campaigns: bool,
}

impl Sources {
    fn of(plan: &[(Source, Vec<PathBuf>)]) -> Sources {
        Sources {
            customers: plan.iter().any(|(s, _)| s.entity == Entity::Customer),
            products: plan.iter().any(|(s, _)| s.entity == Entity::Product),
            campaigns: plan.iter().any(|(s, _)| s.entity == Entity::Campaign),
        }
    }
}

/// Known ids for relationship rules: the warehouse's dimensions (none on a full refresh),
/// for the entities that have a source of their own; this load's dimension files, which
/// are scanned first, add theirs as they go.
fn known_ids(base: Option<&Warehouse>, sources: Sources) -> Result<cleanse::KnownIds> {
    let existing = |table: &str, column: &str| -> Result<Series> {
        let mut ids = Series::new_empty(column.into(), &DataType::String);
        if let Some(wh) = base
            && let Some(df) = wh.read_polars(table)?
        {
            ids = df.column(column)?.as_materialized_series().drop_nulls();
        }
        Ok(ids)
    };
    use tables::{DIM_CAMPAIGN, DIM_CUSTOMER, DIM_PRODUCT};
    Ok(cleanse::KnownIds {
        customers: sources
            .customers
            .then(|| existing(DIM_CUSTOMER, "customer_id"))
            .transpose()?,
        products: sources
            .products
            .then(|| existing(DIM_PRODUCT, "product_id"))
            .transpose()?,
        campaigns: sources
            .campaigns
            .then(|| existing(DIM_CAMPAIGN, "campaign_id"))
            .transpose()?,
    })
}

/// Phase 1 over every new file, in order (sources are sorted customers, products, order
/// lines, contacts, so a dimension file's ids are known to the facts after it).
fn scan_all(
    tx: &mut Transaction<'_>,
    todo: Vec<(Source, PathBuf, String, u64)>,
    known: &mut cleanse::KnownIds,
    sources: Sources,
    opts: &IngestOptions,
) -> Result<Vec<FileLoad>> {
    let chunk_rows = opts.chunk_rows.unwrap_or(DEFAULT_CHUNK_ROWS).max(1);
    let mut seen_keys: HashMap<String, HashMap<String, (String, u64)>> = HashMap::new();
    let mut loads: Vec<FileLoad> = Vec::new();
    for (index, (source, path, sha, bytes)) in todo.into_iter().enumerate() {
        let keys = seen_keys.entry(source.name.clone()).or_default();
        let file = StagedFile {
            source: &source,
            path: &path,
            index,
            chunk_rows,
            progress: opts.progress,
            derive: build::Derive {
                customers: !sources.customers,
                products: !sources.products,
            },
        };
        let fl = load_file(tx, &file, sha, bytes, known, keys)?;
        let add = |set: &mut Option<Series>, c: &str| -> Result<()> {
            if let Some(s) = set {
                let good = fl.good()?;
                s.append(&good.column(c)?.as_materialized_series().drop_nulls())?;
            }
            Ok(())
        };
        match source.entity {
            Entity::Customer => add(&mut known.customers, "customer_id")?,
            Entity::Product => add(&mut known.products, "product_id")?,
            Entity::Campaign => add(&mut known.campaigns, "campaign_id")?,
            _ => {}
        }
        tracing::info!(
            file = %fl.summary.file,
            read = fl.summary.rows_read,
            loaded = fl.summary.rows_loaded,
            rejected = fl.summary.rows_rejected,
            duplicates = fl.summary.duplicates,
            "scanned"
        );
        loads.push(fl);
    }
    Ok(loads)
}

/// The quality gate: nothing is published when a file's rejected share is above `max`.
fn reject_gate(loads: &[FileLoad], max: Option<f64>) -> Result<()> {
    let Some(max) = max else { return Ok(()) };
    for fl in loads {
        let s = &fl.summary;
        if s.rows_read > 0 && (s.rows_rejected as f64) > max * (s.rows_read as f64) {
            return Err(Error::QualityGate(format!(
                "{}: {} of {} rows rejected ({:.2}%), above --max-reject-rate {}; the warehouse is unchanged",
                s.file,
                s.rows_rejected,
                s.rows_read,
                100.0 * s.rows_rejected as f64 / s.rows_read as f64,
                max
            )));
        }
    }
    Ok(())
}

/// What a rollback removed.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub load_id: i64,
    /// Rows removed per table (`loads` rows included).
    pub removed: BTreeMap<String, u64>,
}

/// Removes one load: its fact rows, campaign contacts, rejects and `loads` rows, in one
/// atomic commit. Dimension rows stay: members and versions are history that later loads'
/// facts may point to, and a file loaded again later finds them.
pub fn rollback(root: &Path, load_id: i64) -> Result<Rollback> {
    let lock = WriterLock::acquire(root, &format!("rollback of load {load_id}"))?;
    let wh = Warehouse::open(root)?;
    let loads = wh
        .read_polars(tables::LOADS)?
        .ok_or_else(|| Error::NotFound {
            what: "load",
            name: load_id.to_string(),
            hint: " (the warehouse has no loads)".into(),
        })?;
    let ids: BTreeSet<i64> = loads.column("load_id")?.i64()?.iter().flatten().collect();
    if !ids.contains(&load_id) {
        return Err(Error::NotFound {
            what: "load",
            name: load_id.to_string(),
            hint: format!(
                " (loads: {})",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut tx = wh.begin(&lock);
    let mut removed = tx.remove_load(load_id as u64);
    let mut kept = loads
        .lazy()
        .filter(col("load_id").neq(lit(load_id)))
        .collect()?;
    removed.insert(
        tables::LOADS.into(),
        wh.table(tables::LOADS)?.rows() - kept.height() as u64,
    );
    let f = tx.write_polars(
        "loads",
        None,
        &mut kept,
        &crate::warehouse::Owner::default(),
    )?;
    tx.replace(tables::LOADS, vec![f]);
    let wh = Warehouse::commit(tx, &format!("rollback load {load_id}"))?;
    build::write_loads_json(&wh)?;
    Ok(Rollback { load_id, removed })
}

/// A file to scan and where it stands in the load.
struct StagedFile<'a> {
    source: &'a Source,
    path: &'a Path,
    /// Position in the load, to order rows across files.
    index: usize,
    chunk_rows: usize,
    progress: bool,
    /// Which dimensions are derived from order lines (no customer / product source).
    derive: build::Derive,
}

/// Time one file's chunks spent per step, logged at debug level (ECRM_LOG=debug) to see
/// where a load goes; the scan runs on its own thread, so its share is what the rest leaves
/// (waiting for chunks, and dropping exact duplicates).
struct StepTimes {
    started: std::time::Instant,
    cleanse: std::time::Duration,
    compute: std::time::Duration,
    derive: std::time::Duration,
    stage: std::time::Duration,
}

impl Default for StepTimes {
    fn default() -> Self {
        let zero = std::time::Duration::ZERO;
        StepTimes {
            started: std::time::Instant::now(),
            cleanse: zero,
            compute: zero,
            derive: zero,
            stage: zero,
        }
    }
}

impl StepTimes {
    fn log(&self, file: &str) {
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        let busy = self.cleanse + self.compute + self.derive + self.stage;
        tracing::debug!(
            file,
            scan_ms = ms(self.started.elapsed().saturating_sub(busy)),
            cleanse_ms = ms(self.cleanse),
            compute_ms = ms(self.compute),
            derive_ms = ms(self.derive),
            stage_ms = ms(self.stage),
            "file scanned"
        );
    }
}

/// Scans and cleanses one file, staging its good rows.
fn load_file(
    tx: &mut Transaction<'_>,
    file: &StagedFile<'_>,
    sha256: String,
    bytes: u64,
    known: &cleanse::KnownIds,
    seen_keys: &mut HashMap<String, (String, u64)>,
) -> Result<FileLoad> {
    let (source, path) = (file.source, file.path);
    let label = path.display().to_string();
    let mut staged = Vec::new();
    let mut rows_loaded = 0u64;
    let mut reject_parts = Vec::new();
    let mut derived = build::Derived::default();
    let mut times = StepTimes::default();
    let on_chunk = |chunk: scan::Chunk| -> Result<()> {
        let t = std::time::Instant::now();
        let cleanse::Cleansed { mut good, bad } = cleanse::cleanse(source, chunk, known)?;
        if bad.height() > 0 {
            reject_parts.push(bad);
        }
        if !source.dedupe_key.is_empty() {
            let (keep, dups) = cleanse::dedupe_chunk(good, &source.dedupe_key, seen_keys, &label)?;
            good = keep;
            if let Some(d) = dups {
                reject_parts.push(d);
            }
        }
        if good.column("__raw").is_ok() {
            good = good.drop("__raw")?;
        }
        times.cleanse += t.elapsed();
        if source.entity == Entity::OrderLine {
            let t = std::time::Instant::now();
            good = compute::order_lines(source, good, &source_file(&source.name, path))?;
            times.compute += t.elapsed();
            let t = std::time::Instant::now();
            derived.add(&good, file.index, file.derive)?;
            good = build::sales_inputs(good)?;
            times.derive += t.elapsed();
        }
        if good.height() > 0 {
            let t = std::time::Instant::now();
            rows_loaded += good.height() as u64;
            staged.push(tx.stage(&mut good)?);
            times.stage += t.elapsed();
        }
        Ok(())
    };
    let outcome = scan_pipelined(file, bytes, on_chunk)?;
    times.log(&label);

    let rejects = file_rejects(source, path, &outcome.rejects, reject_parts)?;
    let mut reasons = BTreeMap::new();
    for r in rejects.column("reason")?.str()?.iter().flatten() {
        *reasons.entry(r.to_string()).or_insert(0u64) += 1;
    }
    let summary = FileSummary {
        source: source.name.clone(),
        file: label,
        sha256,
        bytes,
        status: FileStatus::Loaded,
        previous_load: None,
        rows_read: outcome.rows_read,
        rows_loaded,
        rows_rejected: rejects.height() as u64,
        duplicates: outcome.duplicates,
        reasons,
    };
    if summary.rows_read != summary.rows_loaded + summary.rows_rejected + summary.duplicates {
        return Err(Error::Internal(format!(
            "{}: {} rows read but {} loaded + {} rejected + {} duplicates",
            summary.file,
            summary.rows_read,
            summary.rows_loaded,
            summary.rows_rejected,
            summary.duplicates
        )));
    }
    Ok(FileLoad {
        source: source.clone(),
        summary,
        staged,
        rejects,
        derived,
    })
}

/// One file's rejects as `record`, `line`, `raw`, `reason`, `detail`, in record order: the
/// scan's rejects and the cleansing's (`parts`), with the raw text read back by byte range
/// (Parquet rows have no byte range: their raw text came along as `__raw`).
fn file_rejects(
    source: &Source,
    path: &Path,
    scanned: &[scan::ScanReject],
    parts: Vec<DataFrame>,
) -> Result<DataFrame> {
    let mut rejects = df!(
        "__record" => scanned.iter().map(|r| r.record).collect::<Vec<_>>(),
        "__line" => scanned.iter().map(|r| r.line).collect::<Vec<_>>(),
        "__start" => scanned.iter().map(|r| r.start).collect::<Vec<_>>(),
        "__end" => scanned.iter().map(|r| r.end).collect::<Vec<_>>(),
        "__reason" => scanned.iter().map(|r| r.reason.code()).collect::<Vec<_>>(),
        "__detail" => scanned.iter().map(|r| r.detail.clone()).collect::<Vec<_>>(),
    )?;
    let parquet = source.format == contract::Format::Parquet;
    if parquet {
        rejects.with_column(Column::new("__raw".into(), Vec::<String>::new()))?;
    }
    for part in parts {
        rejects.vstack_mut(&part)?;
    }
    rejects = rejects.sort(["__record"], SortMultipleOptions::default())?;
    let raw: Vec<String> = if parquet {
        rejects
            .column("__raw")?
            .str()?
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    } else {
        let ranges: Vec<(u64, u64)> = rejects
            .column("__start")?
            .u64()?
            .into_no_null_iter()
            .zip(rejects.column("__end")?.u64()?.into_no_null_iter())
            .collect();
        scan::read_raw(path, source.encoding, &ranges)?
    };
    Ok(df!(
        "record" => rejects.column("__record")?.as_materialized_series().clone(),
        "line" => rejects.column("__line")?.as_materialized_series().clone(),
        "raw" => raw,
        "reason" => rejects.column("__reason")?.as_materialized_series().clone(),
        "detail" => rejects.column("__detail")?.as_materialized_series().clone(),
    )?)
}

/// Runs the scan on its own thread while this one drops exact duplicates and `on_chunk`
/// cleanses and stages, so the two halves of a load overlap (a bounded channel of two chunks
/// keeps memory flat).
fn scan_pipelined(
    file: &StagedFile<'_>,
    bytes: u64,
    mut on_chunk: impl FnMut(scan::Chunk) -> Result<()>,
) -> Result<scan::ScanOutcome> {
    let (source, path, chunk_rows) = (file.source, file.path, file.chunk_rows);
    let bar = progress_bar(file.progress, path, bytes);
    let (sender, receiver) = std::sync::mpsc::sync_channel::<scan::Chunk>(2);
    std::thread::scope(|scope| {
        let scanner = scope.spawn(move || {
            // A send fails only when the consumer stopped on an error, which it reports.
            let send = |chunk| {
                sender
                    .send(chunk)
                    .map_err(|_| Error::Internal("the chunk consumer stopped".into()))
            };
            match source.format {
                contract::Format::Csv | contract::Format::Fixed => {
                    scan::scan_text(source, path, chunk_rows, send)
                }
                contract::Format::Ndjson => scan::scan_ndjson(source, path, chunk_rows, send),
                contract::Format::Parquet => scan::scan_parquet(source, path, chunk_rows, send),
            }
        });
        let mut consumed = Ok(());
        let mut repeats = scan::Repeats::default();
        for chunk in receiver {
            // The byte offset after the chunk's last record (0 for Parquet: no progress; none
            // for a last chunk of digests alone, which leaves the bar where it is).
            let done = chunk
                .frame
                .column("__end")
                .ok()
                .and_then(|c| c.u64().ok()?.max());
            if let (Some(bar), Some(done)) = (&bar, done) {
                bar.set_position(done);
            }
            consumed = repeats.drop_from(chunk).and_then(&mut on_chunk);
            if consumed.is_err() {
                // Dropping the receiver (end of this loop) makes the scanner's next send fail.
                break;
            }
        }
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let scanned = scanner
            .join()
            .map_err(|_| Error::Internal(format!("the scan of {} panicked", path.display())))?;
        consumed?;
        let mut scanned = scanned?;
        repeats.settle(&mut scanned);
        Ok(scanned)
    })
}

/// A progress bar over a file's bytes on stderr, only when asked (a terminal, not quiet).
fn progress_bar(show: bool, path: &Path, bytes: u64) -> Option<indicatif::ProgressBar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::new(bytes);
    let style =
        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(file_name(path));
    Some(bar)
}

/// The typed frame of a file with no good rows: cleanse (and compute) an empty chunk.
pub fn empty_good(source: &Source) -> Result<DataFrame> {
    let mut cols = vec![
        Column::new("__record".into(), Vec::<u64>::new()),
        Column::new("__line".into(), Vec::<u64>::new()),
        Column::new("__start".into(), Vec::<u64>::new()),
        Column::new("__end".into(), Vec::<u64>::new()),
    ];
    for c in &source.columns {
        cols.push(Column::new(c.name.as_str().into(), Vec::<String>::new()));
    }
    let chunk = scan::Chunk::of(DataFrame::new_infer_height(cols)?);
    let good = cleanse::cleanse(source, chunk, &cleanse::KnownIds::default())?.good;
    match source.entity {
        Entity::OrderLine => compute::order_lines(source, good, ""),
        _ => Ok(good),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_rate_is_a_share() {
        let p = |r: Option<f64>| IngestParams {
            contract: "c.toml".into(),
            max_reject_rate: r,
        };
        assert!(p(None).check().is_ok());
        assert!(p(Some(0.0)).check().is_ok());
        assert!(p(Some(1.0)).check().is_ok());
        match p(Some(5.0)).check() {
            Err(Error::Param { key, message }) => {
                assert_eq!(key, "max_reject_rate");
                assert_eq!(message, "5 is not between 0 and 1");
            }
            other => panic!("{other:?}"),
        }
    }

    const CONTRACT: &str = r#"
[sources.tx]
entity = "order_line"
path = "tx.csv"
cancellation_prefix = "C"
[sources.tx.columns]
invoice_no = { from = "InvoiceNo" }
invoice_ts = { from = "InvoiceDate", formats = ["%Y-%m-%d %H:%M"] }
product_id = { from = "StockCode" }
quantity = { from = "Quantity" }
unit_price = { from = "UnitPrice" }
customer_id = { from = "CustomerID" }
[sources.tx.rules]
not_null = ["invoice_no", "invoice_ts", "product_id", "quantity", "unit_price"]
"#;

    /// The same columns read as whitespace-separated and as fixed-width text without a
    /// header, with line totals and customer-day baskets.
    const LOG_CONTRACTS: [&str; 2] = [
        r#"
[sources.tx]
entity = "order_line"
path = "tx.csv"
delimiter = "whitespace"
basket = "customer_day"
exact_duplicates = "keep"
[sources.tx.columns]
invoice_ts = { from = "InvoiceDate", formats = ["%Y-%m-%d"] }
product_id = { from = "StockCode" }
quantity = { from = "Quantity" }
line_total = { from = "UnitPrice" }
customer_id = { from = ["CustomerID", "InvoiceNo"] }
"#,
        r#"
[sources.tx]
entity = "order_line"
path = "tx.csv"
format = "fixed"
header = false
widths = [2, 3, 4, 10, 6]
[sources.tx.columns]
invoice_no = { from = 1 }
product_id = { from = 2 }
quantity = { from = 3 }
invoice_ts = { from = 4, formats = ["%Y-%m-%d"] }
unit_price = { from = 5 }
customer_id = { value = "c" }
"#,
    ];

    /// Bytes that look like CSV often enough to reach every path of the scan and the
    /// cleansing: fields, separators, quotes, line ends, digits, dates, invalid UTF-8.
    fn csv_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just(b",".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"C".to_vec()),
            Just(b"2011-01-02 08:26".to_vec()),
            Just(b"1,A,2,2011-01-02 08:26,2.55,c1\n".to_vec()),
            (0..1000i32).prop_map(|n| n.to_string().into_bytes()),
            "-?[0-9]{1,6}\\.[0-9]{1,5}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 1..6),
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    /// The scan's share of cleansing and the duplicate drop on the consuming thread, in
    /// chunks of two rows so that records repeat across chunks: a repeat is a duplicate
    /// whether it was good or ragged, null tokens are found after trimming, and a reject's
    /// detail still quotes the value as it was, white space included.
    #[test]
    fn repeats_across_chunks_are_duplicates_and_tokens_are_trimmed_first() {
        let dir = tempfile::tempdir().unwrap();
        let text = CONTRACT.replace(
            "cancellation_prefix = \"C\"",
            "cancellation_prefix = \"C\"\nnull_tokens = [\"\", \"NULL\"]",
        );
        let contract = Contract::parse(&dir.path().join("c.toml"), &text).unwrap();
        let lines = [
            "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID",
            "1,A,2,2011-01-02 08:26,2.55,c1",
            "1,A,2,2011-01-02 08:26,2.55",
            "2, B ,3,2011-01-02 08:26,1.00,  ",
            "1,A,2,2011-01-02 08:26,2.55",
            "1,A,2,2011-01-02 08:26,2.55,c1",
            "3,C,x,2011-01-02 08:26,1.00,c2",
            "4,D, 5x ,2011-01-02 08:26,1.00,c2",
            "5,E,1,2011-01-02 08:26,1.00, NULL",
        ];
        std::fs::write(dir.path().join("tx.csv"), lines.join("\n")).unwrap();
        let wh = dir.path().join("wh");
        let opts = IngestOptions {
            chunk_rows: Some(2),
            ..IngestOptions::default()
        };
        let s = ingest(&wh, &contract, &opts).unwrap();
        let f = &s.files[0];
        assert_eq!(
            (f.rows_read, f.rows_loaded, f.rows_rejected, f.duplicates),
            (8, 3, 3, 2)
        );
        let wh = Warehouse::open(&wh).unwrap();
        let rejects = wh.read_polars(tables::REJECTS).unwrap().unwrap();
        let text = |df: &DataFrame, c: &str| -> Vec<Option<String>> {
            let c = df.column(c).unwrap().cast(&DataType::String).unwrap();
            c.str()
                .unwrap()
                .iter()
                .map(|v| v.map(String::from))
                .collect()
        };
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(text(&rejects, "record"), some(&["2", "6", "7"]));
        assert_eq!(
            text(&rejects, "detail"),
            some(&[
                "5 fields, the header has 6",
                "quantity 'x' is not an integer",
                "quantity ' 5x ' is not an integer",
            ])
        );
        let sales = wh
            .read_polars(tables::FACT_SALES)
            .unwrap()
            .unwrap()
            .sort(["product_id"], SortMultipleOptions::default())
            .unwrap();
        assert_eq!(text(&sales, "product_id"), some(&["A", "B", "E"]));
        assert_eq!(text(&sales, "customer_key").iter().flatten().count(), 3);
        let guests = sales.column("customer_key").unwrap().i64().unwrap();
        assert_eq!(guests.into_no_null_iter().filter(|k| *k == 0).count(), 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(128))]

        /// Whatever the bytes after a good header, the contract-driven reader never panics,
        /// and every row it read is loaded, rejected with a reason, or a dropped duplicate:
        /// read as CSV, as whitespace-separated and as fixed-width text.
        #[test]
        fn every_row_of_any_bytes_is_accounted_for(body in csv_bytes()) {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("c.toml");
            let mut bytes = b"InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n".to_vec();
            bytes.extend(body);
            std::fs::write(dir.path().join("tx.csv"), &bytes).unwrap();
            for (i, text) in std::iter::once(CONTRACT).chain(LOG_CONTRACTS).enumerate() {
                let contract = Contract::parse(&file, text).unwrap();
                every_row_accounted_for(&dir.path().join(format!("wh{i}")), &contract)?;
            }
        }
    }

    /// Ingests `contract`'s file: it loads with every row accounted for, or fails with the
    /// user's error, never an internal one.
    fn every_row_accounted_for(
        wh: &Path,
        contract: &Contract,
    ) -> std::result::Result<(), proptest::test_runner::TestCaseError> {
        match ingest(wh, contract, &IngestOptions::default()) {
            Ok(s) => {
                for f in &s.files {
                    proptest::prop_assert_eq!(
                        f.rows_read,
                        f.rows_loaded + f.rows_rejected + f.duplicates,
                        "{:?}",
                        f
                    );
                    proptest::prop_assert_eq!(f.reasons.values().sum::<u64>(), f.rows_rejected);
                }
                let loaded: u64 = s.files.iter().map(|f| f.rows_loaded).sum();
                let facts = s.tables.get(tables::FACT_SALES).copied().unwrap_or(0);
                proptest::prop_assert_eq!(facts, loaded);
            }
            // A file the reader cannot take is the user's error, named, never ours.
            Err(e) => proptest::prop_assert!(!matches!(e, Error::Internal(_)), "{e}"),
        }
        Ok(())
    }
}
