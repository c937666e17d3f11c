//! The load's own records: `rejects` (one file per input file that had any), the `loads`
//! table (one row per file, ever) and its JSON copy `loads.json`.

use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::{BuildInput, ts_type};
use crate::error::{Error, Result};
use crate::ingest::FileLoad;
use crate::warehouse::{Owner, Transaction, Warehouse, tables};

/// Appends each file's rejects (so replacing a file replaces its rejects), and an empty file
/// the first time, so the table exists.
pub(super) fn write_rejects(tx: &mut Transaction<'_>, input: &BuildInput<'_>) -> Result<()> {
    let load_id = input.load_id;
    for fl in input.loads {
        let n = fl.rejects.height();
        if n == 0 {
            continue;
        }
        let mut df = fl.rejects.clone();
        df.insert_column(
            0,
            Column::new("file".into(), vec![fl.summary.file.clone(); n]),
        )?;
        df.insert_column(
            0,
            Column::new("source".into(), vec![fl.source.name.clone(); n]),
        )?;
        df.insert_column(0, Column::new("load_id".into(), vec![load_id; n]))?;
        let f = tx.write_polars(tables::REJECTS, None, &mut df, &fl.owner(load_id))?;
        tx.append(tables::REJECTS, vec![f]);
    }
    if tx.next().tables.contains_key(tables::REJECTS) {
        return Ok(());
    }
    let mut empty = df!(
        "load_id" => Vec::<i64>::new(),
        "source" => Vec::<String>::new(),
        "file" => Vec::<String>::new(),
        "record" => Vec::<u64>::new(),
        "line" => Vec::<u64>::new(),
        "raw" => Vec::<String>::new(),
        "reason" => Vec::<String>::new(),
        "detail" => Vec::<String>::new(),
    )?;
    let owner = Owner {
        load_id: Some(load_id as u64),
        source_file: None,
    };
    let f = tx.write_polars(tables::REJECTS, None, &mut empty, &owner)?;
    tx.append(tables::REJECTS, vec![f]);
    Ok(())
}

/// Rewrites `loads`: the earlier rows plus one per file of this load.
pub(super) fn write_loads(tx: &mut Transaction<'_>, input: &BuildInput<'_>) -> Result<()> {
    let mut loads = loads_frame(input.loads, input.load_id, input.started, input.finished)?;
    if let Some(prev) = input.previous_loads {
        let mut prev = prev.clone();
        prev.vstack_mut(&loads)?;
        loads = prev;
    }
    let f = tx.write_polars(tables::LOADS, None, &mut loads, &Owner::default())?;
    tx.replace(tables::LOADS, vec![f]);
    Ok(())
}

/// One `loads` row per file of this load.
fn loads_frame(
    loads: &[FileLoad],
    load_id: i64,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&FileLoad) -> String| loads.iter().map(f).collect::<Vec<_>>();
    let u = |f: &dyn Fn(&FileLoad) -> u64| loads.iter().map(f).collect::<Vec<_>>();
    let n = loads.len();
    let df = df!(
        "load_id" => vec![load_id; n],
        "source" => s(&|l| l.source.name.clone()),
        "file" => s(&|l| l.summary.file.clone()),
        "file_name" => s(&|l| std::path::Path::new(&l.summary.file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        "sha256" => s(&|l| l.summary.sha256.clone()),
        "bytes" => u(&|l| l.summary.bytes),
        "rows_read" => u(&|l| l.summary.rows_read),
        "rows_loaded" => u(&|l| l.summary.rows_loaded),
        "rows_rejected" => u(&|l| l.summary.rows_rejected),
        "duplicates" => u(&|l| l.summary.duplicates),
        "started_at" => vec![started.naive_utc().and_utc().timestamp_micros(); n],
        "finished_at" => vec![finished.naive_utc().and_utc().timestamp_micros(); n],
    )?;
    Ok(df
        .lazy()
        .with_columns([
            col("started_at").cast(ts_type()),
            col("finished_at").cast(ts_type()),
        ])
        .collect()?)
}

/// Writes `<warehouse>/loads.json`: the `loads` table as JSON, for schedulers and people.
pub fn write_loads_json(wh: &Warehouse) -> Result<()> {
    let Some(df) = wh.read_polars(tables::LOADS)? else {
        return Ok(());
    };
    let mut rows = Vec::with_capacity(df.height());
    let cols = df.columns();
    for i in 0..df.height() {
        let mut obj = serde_json::Map::new();
        for c in cols {
            let v = c.get(i)?;
            let json = match v {
                AnyValue::Null => serde_json::Value::Null,
                AnyValue::String(s) => serde_json::Value::from(s),
                AnyValue::Int64(x) => serde_json::Value::from(x),
                AnyValue::UInt64(x) => serde_json::Value::from(x),
                AnyValue::Datetime(us, _, _) => serde_json::Value::from(
                    DateTime::<Utc>::from_timestamp_micros(us)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                        .unwrap_or_default(),
                ),
                other => serde_json::Value::from(other.to_string()),
            };
            obj.insert(c.name().to_string(), json);
        }
        rows.push(serde_json::Value::Object(obj));
    }
    let body = serde_json::to_vec_pretty(&rows).map_err(|e| Error::Internal(e.to_string()))?;
    crate::warehouse::files::write_bytes(&wh.root().join("loads.json"), &body)
}
