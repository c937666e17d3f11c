//! Where an uplift model's rows come from and where its scores go: a randomised test in a
//! file (`--input`), or a campaign in the warehouse (its contacts, the outcome in each
//! contact's window, and the feature mart as of the campaign); scores into a file or table
//! `uplift_scores`.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::uplift::{self, Source, TestRows, UpliftModelFile, UpliftTrainParams};
use crate::error::{Error, Result};
use crate::features::bridge::{Encoder, Note};
use crate::olap::{self, EngineOptions};

/// A randomised test in a file: which columns are what.
#[derive(Debug, Clone)]
pub struct TestFile<'a> {
    pub input: &'a Path,
    pub arm: &'a str,
    /// The control arm's value in `arm`.
    pub control: &'a str,
    /// The treatment arm's value; default: every other value (with it, other arms' rows are
    /// left out).
    pub treatment: Option<&'a str>,
    /// A binary outcome: 1/0, true/false, yes/no.
    pub outcome: &'a str,
    /// Feature columns; default every column but the arm, the outcome and the id. Name them
    /// when the file holds other outcomes (they would leak the answer).
    pub features: Option<&'a [String]>,
    /// An id column carried into the scores; default `customer_id` when the file has it.
    pub id: Option<&'a str>,
}

/// A test file, read and encoded.
struct Read {
    /// Fitted on the file unless one was given.
    encoder: Encoder,
    rows: TestRows,
    /// Rows of other treatment arms, left out.
    other_arms: u64,
    notes: Vec<Note>,
    id: Option<String>,
}

/// Reads and encodes a test file (with `encoder`, or fitting one).
async fn read_test(
    f: &TestFile<'_>,
    path: &Path,
    encoder: Option<&Encoder>,
    engine: &EngineOptions,
) -> Result<Read> {
    let source = path.display().to_string();
    let (schema, batches) = olap::read_in_order(path, None, engine).await?;
    let arm_idx = olap::column_index(path, &schema, "arm", f.arm)?;
    let y_idx = olap::column_index(path, &schema, "outcome", f.outcome)?;
    let mut arms: Vec<Option<bool>> = Vec::new();
    for b in &batches {
        let a = olap::text_column(b.column(arm_idx))?;
        for i in 0..a.len() {
            if a.is_null(i) {
                return Err(Error::input(
                    path,
                    format!("row {}: arm column {:?} is empty", arms.len() + 1, f.arm),
                ));
            }
            let v = a.value(i);
            arms.push(match f.treatment {
                _ if v == f.control => Some(false),
                Some(t) if v != t => None,
                _ => Some(true),
            });
        }
    }
    let y = crate::churn::labels(&batches, y_idx, f.outcome, &source)?;
    let (encoder, mut notes) = match encoder {
        Some(e) => (e.clone(), Vec::new()),
        None => {
            let exclude: Vec<&str> = match f.features {
                Some(keep) => {
                    for k in keep {
                        olap::column_index(path, &schema, "features", k)?;
                    }
                    schema
                        .fields()
                        .iter()
                        .map(|c| c.name().as_str())
                        .filter(|n| !keep.iter().any(|k| k == n))
                        .collect()
                }
                None => [f.arm, f.outcome]
                    .into_iter()
                    .chain(id_of(f, &schema))
                    .collect(),
            };
            Encoder::fit(&schema, &batches, &exclude)?
        }
    };
    let (x, more) = encoder.transform(&schema, &batches, &source)?;
    notes.extend(more);
    let kept: Vec<usize> = (0..arms.len()).filter(|&i| arms[i].is_some()).collect();
    let rows = TestRows {
        x: x.select(ndarray::Axis(0), &kept),
        treated: kept.iter().map(|&i| arms[i] == Some(true)).collect(),
        outcome: kept.iter().map(|&i| y[i]).collect(),
    };
    Ok(Read {
        encoder,
        rows,
        other_arms: (arms.len() - kept.len()) as u64,
        notes,
        id: id_of(f, &schema).map(str::to_string),
    })
}

/// The id column of a test file: the one named, else `customer_id` when there is one.
fn id_of<'a>(f: &TestFile<'a>, schema: &Schema) -> Option<&'a str> {
    f.id.or_else(|| schema.index_of("customer_id").ok().map(|_| "customer_id"))
}

/// Trains on a test file (`test`: a second file of the same layout measures the model).
pub async fn train_file(
    f: &TestFile<'_>,
    test: Option<&Path>,
    params: &UpliftTrainParams,
    engine: &EngineOptions,
) -> Result<(UpliftModelFile, Vec<Note>)> {
    params.check()?;
    let Read {
        encoder,
        rows,
        other_arms,
        mut notes,
        id,
    } = read_test(f, f.input, None, engine).await?;
    let test_rows = match test {
        Some(t) => {
            let r = read_test(f, t, Some(&encoder), engine).await?;
            notes.extend(
                r.notes
                    .into_iter()
                    .map(|n| n.about(&t.display().to_string())),
            );
            Some(r.rows)
        }
        None => None,
    };
    let source = Source {
        kind: "file".into(),
        input: f.input.display().to_string(),
        arm: f.arm.into(),
        control: f.control.into(),
        treatment: f.treatment.map(str::to_string),
        outcome: f.outcome.into(),
        id,
        rows: rows.treated.len() as u64,
        treated: rows.treated.iter().filter(|&&t| t).count() as u64,
        left_out: other_arms,
        test_input: test.map(|t| t.display().to_string()),
        as_of: None,
    };
    let model = uplift::train(params, encoder, &rows, test_rows.as_ref(), source)?;
    Ok((model, notes))
}

/// The scores of encoded rows: `ids` (when given) and per row uplift, p_treated, p_control
/// and the group.
pub fn scores(
    model: &UpliftModelFile,
    ids: Option<(&str, ArrayRef)>,
    x: &ndarray::Array2<f64>,
) -> Result<RecordBatch> {
    let p = model.predict(x);
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some((name, ids)) = ids {
        fields.push(Field::new(name, ids.data_type().clone(), true));
        columns.push(ids);
    }
    let number = |f: fn(&uplift::Prediction) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(p.iter().map(f)))
    };
    for (name, f) in [
        (
            "uplift",
            (|q: &uplift::Prediction| Some(q.uplift)) as fn(&uplift::Prediction) -> Option<f64>,
        ),
        ("p_treated", |q| q.p_treated),
        ("p_control", |q| q.p_control),
    ] {
        fields.push(Field::new(name, DataType::Float64, name != "uplift"));
        columns.push(number(f));
    }
    fields.push(Field::new("group", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from_iter_values(
        p.iter().map(|q| uplift::group(q, model.params.margin)),
    )));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Scores every row of a file, in input order; the model's id column is carried when the
/// file has it.
pub async fn score_file(
    model: &UpliftModelFile,
    input: &Path,
    engine: &EngineOptions,
) -> Result<(RecordBatch, Vec<Note>)> {
    let source = input.display().to_string();
    let (schema, batches) = olap::read_in_order(input, None, engine).await?;
    let (x, notes) = model.encoder.transform(&schema, &batches, &source)?;
    let ids = match model.source.id.as_deref() {
        Some(id) if schema.index_of(id).is_ok() => {
            let idx = schema.index_of(id)?;
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(idx).as_ref()).collect();
            Some((id, datafusion::arrow::compute::concat(&parts)?))
        }
        _ => None,
    };
    Ok((scores(model, ids, &x)?, notes))
}

/// A contact of one of the warehouse's campaigns with a complete window.
struct Contact {
    /// The campaign's first contact day.
    day: chrono::NaiveDate,
    campaign: String,
    customer: String,
    treated: bool,
    /// Whether the customer bought in the window.
    bought: bool,
}

/// The contacts of `campaigns` (every campaign with a control arm when empty) whose window
/// (`window_days`, else the campaign's, else 14 days) ended before `as_of`.
async fn campaign_contacts(
    ctx: &datafusion::prelude::SessionContext,
    campaigns: &[String],
    window_days: Option<u32>,
    as_of: chrono::NaiveDate,
) -> Result<Vec<Contact>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Date32Type;
    let has_campaigns = ctx.table_exist(crate::warehouse::tables::DIM_CAMPAIGN)?;
    let default = super::results::DEFAULT_WINDOW_DAYS;
    let window = match window_days {
        Some(n) => n.to_string(),
        None if has_campaigns => format!("COALESCE(k.response_window_days, {default})"),
        None => default.to_string(),
    };
    let join = if has_campaigns {
        "LEFT JOIN dim_campaign k ON k.campaign_id = c.campaign_id"
    } else {
        ""
    };
    let only = if campaigns.is_empty() {
        // DISTINCT: a semi-join on a few campaign ids repeated over every control contact
        // took DataFusion 32 s (700k contacts), as each probe walked every equal key.
        "c.campaign_id IN (SELECT DISTINCT campaign_id FROM fact_campaign_contact WHERE arm = 'control')"
            .to_string()
    } else {
        let ids: Vec<String> = campaigns
            .iter()
            .map(|c| olap::sqltext::literal(c))
            .collect();
        format!("c.campaign_id IN ({})", ids.join(", "))
    };
    let cut = format!("TIMESTAMP '{as_of} 00:00:00'");
    let sql = format!(
        "WITH c AS (
  SELECT c.campaign_id, c.customer_id, c.arm = 'treatment' AS treated, c.contact_ts,
    min(c.contact_ts) OVER (PARTITION BY c.campaign_id) AS first_ts,
    c.contact_ts + arrow_cast(CAST({window} AS BIGINT) * 86400000000, 'Duration(Microsecond)') AS window_end
  FROM fact_campaign_contact c {join}
  WHERE {only} AND c.contact_ts < {cut}
)
SELECT CAST(c.first_ts AS DATE) AS first_day, c.campaign_id, c.customer_id, c.treated,
  count(CASE WHEN NOT s.is_return THEN 1 END) > 0
FROM c LEFT JOIN fact_sales s ON s.customer_id = c.customer_id
  AND s.invoice_ts > c.contact_ts AND s.invoice_ts <= c.window_end
WHERE c.window_end < {cut}
GROUP BY c.campaign_id, c.customer_id, c.contact_ts, c.first_ts, c.treated
ORDER BY c.first_ts, c.campaign_id, c.customer_id, c.contact_ts"
    );
    let (_, batches) = olap::sql(ctx, &sql).await?;
    let mut out = Vec::new();
    for b in &batches {
        let days = b.column(0).as_primitive::<Date32Type>();
        let (campaign, ids) = (
            olap::text_column(b.column(1))?,
            olap::text_column(b.column(2))?,
        );
        let (treated, bought) = (b.column(3).as_boolean(), b.column(4).as_boolean());
        for r in 0..b.num_rows() {
            let day = days
                .value_as_date(r)
                .ok_or_else(|| Error::Internal("a contact day out of range".into()))?;
            out.push(Contact {
                day,
                campaign: campaign.value(r).to_string(),
                customer: ids.value(r).to_string(),
                treated: treated.value(r),
                bought: bought.value(r),
            });
        }
    }
    if out.is_empty() {
        return Err(Error::NotFound {
            what: "campaign contacts with a control arm and a complete window before",
            name: as_of.to_string(),
            hint: if campaigns.is_empty() {
                String::new()
            } else {
                format!(" (campaigns {})", campaigns.join(", "))
            },
        });
    }
    Ok(out)
}

/// What training on the warehouse's campaigns needs.
#[derive(Debug, Clone)]
pub struct TrainCampaigns<'a> {
    /// Campaign ids; empty: every campaign with a control arm.
    pub campaigns: &'a [String],
    pub window_days: Option<u32>,
    /// Contacts whose window ended before this date (default: the day after the last order
    /// line).
    pub as_of: Option<chrono::NaiveDate>,
}

/// Trains on campaign contacts: each contact's features are the mart as of its campaign's
/// first contact day (what was known when the campaign went out), its outcome whether the
/// customer bought in the window. Contacts of customers with no purchase before that day
/// are not in the mart and are left out (counted in the notes).
pub async fn train_campaigns(
    root: &Path,
    t: &TrainCampaigns<'_>,
    params: &UpliftTrainParams,
    engine: &EngineOptions,
) -> Result<(UpliftModelFile, Vec<Note>)> {
    params.check()?;
    let wh = crate::warehouse::Warehouse::open(root)?;
    wh.table(crate::warehouse::tables::FACT_CAMPAIGN_CONTACT)?;
    let ctx = olap::session(&wh, engine).await?;
    let as_of = match t.as_of {
        Some(d) => d,
        None => crate::features::default_as_of(&ctx).await?,
    };
    let contacts = campaign_contacts(&ctx, t.campaigns, t.window_days, as_of).await?;
    let (schema, picked, kept) = mart_rows(&ctx, &contacts).await?;
    let not_features = crate::churn::warehouse::NOT_FEATURES;
    let (encoder, mut notes) = Encoder::fit(&schema, &picked, &not_features)?;
    let source_name = format!("warehouse {} campaigns", root.display());
    let (x, more) = encoder.transform(&schema, &picked, &source_name)?;
    notes.extend(more);
    let left_out = contacts.len() - kept.len();
    if left_out > 0 {
        tracing::info!(
            contacts = left_out,
            "contacts of customers with no purchase before their campaign left out"
        );
    }
    let rows = TestRows {
        x,
        treated: kept.iter().map(|&i| contacts[i].treated).collect(),
        outcome: kept.iter().map(|&i| contacts[i].bought).collect(),
    };
    let source = Source {
        kind: "campaign".into(),
        input: if t.campaigns.is_empty() {
            "every campaign with a control arm".into()
        } else {
            t.campaigns.join(",")
        },
        arm: "arm".into(),
        control: "control".into(),
        treatment: Some("treatment".into()),
        outcome: format!(
            "bought within {} days",
            t.window_days
                .map_or("the campaign's window".to_string(), |n| n.to_string())
        ),
        id: Some("customer_id".into()),
        rows: rows.treated.len() as u64,
        treated: rows.treated.iter().filter(|&&t| t).count() as u64,
        left_out: left_out as u64,
        test_input: None,
        as_of: Some(as_of.to_string()),
    };
    Ok((uplift::train(params, encoder, &rows, None, source)?, notes))
}

/// The mart rows of the contacts, each as of its campaign's first day: (schema, the rows in
/// contact order, the indices of the contacts found in the mart). Each day's rows are those
/// of its campaigns' contacts alone ([`crate::features::rows_of`]); the web events are read
/// once, as of the last day, and cut back day by day ([`crate::features::with_web`]).
async fn mart_rows(
    ctx: &datafusion::prelude::SessionContext,
    contacts: &[Contact],
) -> Result<(
    datafusion::arrow::datatypes::SchemaRef,
    Vec<RecordBatch>,
    Vec<usize>,
)> {
    let days: Vec<&[Contact]> = contacts.chunk_by(|a, b| a.day == b.day).collect();
    // Read at the last day, then cut back day by day.
    let mut events = None;
    // Each day's rows and the indices of its contacts found, latest day first.
    let mut found = Vec::with_capacity(days.len());
    let mut end = contacts.len();
    for day in days.iter().rev() {
        let start = end - day.len();
        let clock = std::time::Instant::now();
        let mut campaigns: Vec<String> = day
            .iter()
            .map(|c| olap::sqltext::literal(&c.campaign))
            .collect();
        campaigns.dedup();
        let only = format!(
            "SELECT customer_id FROM {} WHERE campaign_id IN ({})",
            crate::warehouse::tables::FACT_CAMPAIGN_CONTACT,
            campaigns.join(", ")
        );
        let (schema, batches) =
            crate::features::rows_of(ctx, day[0].day, &only, &mut events).await?;
        found.push(pick(&schema, &batches, day, start)?);
        tracing::debug!(
            day = %day[0].day,
            contacts = day.len(),
            ms = clock.elapsed().as_millis() as u64,
            "mart rows of a campaign day"
        );
        end = start;
    }
    let schema = found
        .first()
        .ok_or_else(|| Error::Internal("no contacts".into()))?
        .0
        .schema();
    let (mut picked, mut kept) = (Vec::new(), Vec::new());
    for (batch, indices) in found.into_iter().rev() {
        picked.push(batch);
        kept.extend(indices);
    }
    Ok((schema, picked, kept))
}

/// The mart rows (`batches`, of `schema`) of a day's contacts `day`, in contact order, and
/// the indices of the contacts found (the day's first is contact `start`).
fn pick(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    day: &[Contact],
    start: usize,
) -> Result<(RecordBatch, Vec<usize>)> {
    use datafusion::arrow::array::UInt32Array;
    let batch = datafusion::arrow::compute::concat_batches(schema, batches)?;
    let ids = olap::text_column(batch.column(schema.index_of("customer_id")?))?;
    let row_of: std::collections::HashMap<&str, u32> =
        (0..ids.len()).map(|i| (ids.value(i), i as u32)).collect();
    let mut take = Vec::new();
    let mut kept = Vec::new();
    for (k, c) in day.iter().enumerate() {
        if let Some(&r) = row_of.get(c.customer.as_str()) {
            take.push(r);
            kept.push(start + k);
        }
    }
    let idx = UInt32Array::from(take);
    let columns = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c.as_ref(), &idx, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((RecordBatch::try_new(schema.clone(), columns)?, kept))
}

/// Scores every customer of the feature mart as of `as_of` (default: the day after the last
/// order line) and replaces table `uplift_scores` (customer_id, uplift, p_treated,
/// p_control, group) with the scores.
pub async fn score_warehouse(
    root: &Path,
    model: &UpliftModelFile,
    as_of: Option<chrono::NaiveDate>,
    engine: &EngineOptions,
) -> Result<(RecordBatch, chrono::NaiveDate, Vec<Note>)> {
    let (lock, wh, ctx, as_of) =
        crate::features::open_as_of(root, "uplift score", as_of, engine).await?;
    let mart = crate::features::compute(&ctx, Some(as_of)).await?;
    let source = format!("warehouse {} as of {as_of}", root.display());
    let (x, notes) = model
        .encoder
        .transform(&mart.schema, &mart.batches, &source)?;
    let idx = mart.schema.index_of("customer_id")?;
    let parts: Vec<&dyn Array> = mart
        .batches
        .iter()
        .map(|b| b.column(idx).as_ref())
        .collect();
    let ids = datafusion::arrow::compute::cast(
        &datafusion::arrow::compute::concat(&parts)?,
        &DataType::Utf8,
    )?;
    let batch = scores(model, Some(("customer_id", ids)), &x)?;
    let mut tx = wh.begin(&lock);
    tx.replace_with(crate::warehouse::tables::UPLIFT_SCORES, &batch)?;
    crate::warehouse::Warehouse::commit(tx, &format!("uplift scores as of {as_of}"))?;
    Ok((batch, as_of, notes))
}
