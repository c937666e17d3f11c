//! `ecrm synth`: a seeded generator of realistic, messy raw CRM extracts.
//!
//! - Input: [`SynthParams`] (seed 42, 2,000 customers, 50,000 order lines by default).
//! - Output, in `--out-dir`: `customers.csv` (Latin-1, `;`-separated), `products.csv`,
//!   `transactions.csv` (order lines), `campaigns.csv`, `campaign_contacts.csv` (with each
//!   contact's arm: a random control arm is held out), `consent_events.csv`,
//!   `web_events.csv` (the web shop's click-stream: see `web`), and `synth.json`, which
//!   records what was planted: each customer's group, lapse dates, co-purchase groups,
//!   follow-up sequences, how each group answers campaigns (uplift), the consent changes, the
//!   funnel rates and visitors of the click-stream, and the exact count of every defect per
//!   file, so tests can check that ingest and mining recover it.
//! - `--layout flat` writes the same order lines as one flat extract instead, `flat.csv`
//!   (quoted fields after a byte-order mark, CRLF, `m/d/yyyy` days, no invoice, line totals
//!   and line costs, a sub-category code, each customer's age group on the day and area on
//!   every line; returns as negative amounts), and `synth.json` with its defects and the
//!   lines a sales extract does not carry (`left_out`: stock write-offs, codes unknown to
//!   masters it has not, rows written twice), so its load can be checked against the normal
//!   layout's: the same loaded lines, revenue, customers and customer-days.
//!
//! Realism: two years of trade (2023–2024) with a Christmas peak and quiet weekends; products
//! in categories and subcategories with a Zipf long tail; four customer groups — one-time
//! buyers (who may come back at any time, rarely: most never do within the data), loyal
//! repeaters, big-basket wholesale buyers, and customers who lapse part-way through the period;
//! co-purchase groups (bundles bought together) and follow-ups (A now, B on the next visit);
//! guest checkouts; returns as `C`-prefixed cancellation invoices; monthly campaigns whose
//! effect depends on the group: loyal customers are persuadable (a treatment contact may
//! bring an extra purchase within 14 days), one-time and wholesale buyers indifferent, and
//! customers on their way out sleeping dogs (a treatment contact makes them drop purchases
//! in those 14 days); the control arm's customers are left as they would have been.
//!
//! Messiness, each defect planted on otherwise clean rows, one defect per row, and counted:
//! exact duplicate rows, trailing spaces, lower-case product codes, two date formats, blank
//! customer ids (guests), zero and negative quantities, unparseable numbers and dates,
//! unknown product and customer codes, ragged lines, Latin-1 text.
//!
//! It streams: invoices are planned in memory (a few bytes each), lines are generated and
//! written one invoice at a time.

mod plan;
mod web;
mod write;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::error::{Error, Result};

/// Generator parameters as given (`ecrm synth`'s options); [`Default`] is the one place a
/// default is written.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SynthParams {
    /// Seed: the same seed and sizes give byte-identical files.
    #[arg(long, default_value_t = SynthParams::default().seed)]
    pub seed: u64,
    /// Number of customers.
    #[arg(long, default_value_t = SynthParams::default().customers)]
    pub customers: u64,
    /// Number of order lines (before planted defects and duplicates).
    #[arg(long, default_value_t = SynthParams::default().order_lines)]
    pub order_lines: u64,
    /// How the order lines are laid out.
    #[arg(long, value_enum, default_value_t = SynthParams::default().layout)]
    pub layout: SynthLayout,
}

crate::choices! {
    /// The extracts `ecrm synth` writes.
    pub enum SynthLayout {
        /// customers.csv, products.csv, transactions.csv (invoices, unit prices) and
        /// campaign_contacts.csv.
        Normal = "normal",
        /// flat.csv alone: one quoted file with a byte-order mark, m/d/yyyy days, no
        /// invoice, line totals and costs, age group and area on every line.
        Flat = "flat",
    }
    default = Normal;
}

impl Default for SynthParams {
    /// Seed 42, 2,000 customers, 50,000 order lines: the committed sample data.
    fn default() -> Self {
        SynthParams {
            seed: 42,
            customers: 2_000,
            order_lines: 50_000,
            layout: SynthLayout::Normal,
        }
    }
}

/// Checked parameters: the only kind [`generate`] accepts.
#[derive(Debug, Clone)]
pub struct ValidSynthParams(SynthParams);

impl SynthParams {
    /// Checks the sizes: at least 20 customers and 200 order lines, at most 10^9 lines.
    pub fn check(self) -> Result<ValidSynthParams> {
        if self.customers < 20 {
            return Err(Error::param(
                "customers",
                format!("{} is too few; at least 20", self.customers),
            ));
        }
        if self.order_lines < 200 || self.order_lines > 1_000_000_000 {
            return Err(Error::param(
                "order_lines",
                format!(
                    "{} is out of range; between 200 and 1000000000",
                    self.order_lines
                ),
            ));
        }
        Ok(ValidSynthParams(self))
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct SynthReport {
    pub customers: u64,
    pub products: u64,
    pub order_lines: u64,
    pub campaign_contacts: u64,
    pub web_events: u64,
}

/// Customer groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    OneTime,
    Loyal,
    Wholesale,
    Lapsing,
}

/// Counts per defect kind in one file; written to synth.json.
#[derive(Debug, Default, Serialize)]
struct FileDefects {
    /// Data rows written, duplicates included.
    rows_written: u64,
    /// Rows written a second time, byte for byte.
    exact_duplicates: u64,
    /// Rows that ingest must reject, by reason code.
    rejects: BTreeMap<&'static str, u64>,
    /// Rows with a defect that the contract repairs, by kind.
    repaired: BTreeMap<&'static str, u64>,
}

impl FileDefects {
    fn reject(&mut self, reason: &'static str) {
        *self.rejects.entry(reason).or_insert(0) += 1;
    }
    fn repair(&mut self, kind: &'static str) {
        *self.repaired.entry(kind).or_insert(0) += 1;
    }
}

const START: (i32, u32, u32) = (2023, 1, 1);
const DAYS: i64 = 731; // 2023-01-01 ..= 2024-12-31
/// Days before the end of the period by which every lapsing customer has stopped buying.
const LAPSE_QUIET: i64 = 150;
/// The mean of the exponential part of a one-time buyer's gaps between purchases (two weeks
/// plus that), in days.
const OCCASIONAL_GAP: f64 = 900.0;

const CATEGORIES: [(&str, [&str; 3]); 8] = [
    ("Home", ["Candles", "Cushions", "Clocks"]),
    ("Kitchen", ["Mugs", "Baking", "Storage"]),
    ("Garden", ["Planters", "Tools", "Lights"]),
    ("Stationery", ["Notebooks", "Cards", "Wrapping"]),
    ("Toys", ["Games", "Plush", "Puzzles"]),
    ("Fashion", ["Bags", "Scarves", "Jewellery"]),
    ("Party", ["Balloons", "Tableware", "Decorations"]),
    ("Christmas", ["Ornaments", "Lights", "Stockings"]),
];
const ADJECTIVES: [&str; 16] = [
    "RED", "WHITE", "VINTAGE", "RETRO", "BLUE", "PINK", "GREEN", "SPOTTY", "FLORAL", "GLASS",
    "WOODEN", "METAL", "HEART", "STAR", "LARGE", "MINI",
];
const COUNTRIES: [(&str, &str, [&str; 3], f64); 7] = [
    (
        "United Kingdom",
        "Europe",
        ["London", "Manchester", "Leeds"],
        0.62,
    ),
    ("Germany", "Europe", ["Köln", "München", "Berlin"], 0.10),
    ("France", "Europe", ["Paris", "Lyon", "Orléans"], 0.09),
    ("Spain", "Europe", ["Málaga", "Madrid", "A Coruña"], 0.06),
    (
        "Netherlands",
        "Europe",
        ["Amsterdam", "Utrecht", "Rotterdam"],
        0.05,
    ),
    ("Ireland", "Europe", ["Dublin", "Cork", "Galway"], 0.05),
    ("Norway", "Europe", ["Tromsø", "Oslo", "Bergen"], 0.03),
];
const FIRST_NAMES: [&str; 12] = [
    "Zoë", "José", "Anna", "Björn", "Chloé", "David", "Émile", "Fatima", "Grace", "Hélène", "Ian",
    "Jürgen",
];
const LAST_NAMES: [&str; 12] = [
    "Müller",
    "García",
    "Smith",
    "Jones",
    "Lefèvre",
    "Østergaard",
    "Brown",
    "Núñez",
    "Taylor",
    "Schön",
    "Wilson",
    "O'Brien",
];
const ACQUISITION: [&str; 5] = ["organic", "paid_search", "social", "email", "referral"];
const CHANNELS: [&str; 3] = ["web", "store", "phone"];

struct Product {
    code: String,
    description: String,
    category: usize,
    sub: usize,
    price_cents: i64,
}

struct Customer {
    id: String,
    group: Group,
    signup: i64,
    lapse: Option<i64>,
    country: usize,
}

/// One planned campaign contact: the campaign (a month, 0 = January 2023), the customer
/// (an index), the day, whether the customer is in the treatment arm (the control arm is
/// held out: recorded, never sent), and whether it went by phone (else e-mail).
#[derive(Clone, Copy)]
struct Contact {
    campaign: i64,
    customer: u32,
    day: i64,
    treated: bool,
    phone: bool,
}

/// One planned invoice: when, who (None = guest), how many lines.
#[derive(Clone, Copy)]
struct Invoice {
    minute: i64,
    customer: Option<u32>,
}

/// A cancellation to write after its invoice: (minute, customer, (product, quantity) lines).
type PlannedReturn = (i64, Option<u32>, Vec<(usize, i64)>);

/// Day sampler with seasonality (Christmas peak) and weekday weights (quiet weekends).
struct Calendar {
    cum: Vec<f64>,
}

impl Calendar {
    fn new() -> Self {
        let start = start_date();
        let mut cum = Vec::with_capacity(DAYS as usize + 1);
        cum.push(0.0);
        for d in 0..DAYS {
            let date = start + Duration::days(d);
            let m = [
                0.8, 0.75, 0.85, 0.9, 0.9, 0.85, 0.85, 0.9, 1.1, 1.3, 1.8, 1.5,
            ][date.month0() as usize];
            let w = [1.0, 1.05, 1.05, 1.1, 0.95, 0.45, 0.6]
                [date.weekday().num_days_from_monday() as usize];
            cum.push(cum[d as usize] + m * w);
        }
        Calendar { cum }
    }

    /// A day in `[from, to]` (day numbers from the start), by weight.
    fn day(&self, rng: &mut impl Rng, from: i64, to: i64) -> i64 {
        let lo = self.cum[from as usize];
        let hi = self.cum[to as usize + 1];
        let x = rng.gen_range(lo..hi);
        let i = self.cum.partition_point(|&c| c <= x);
        (i as i64 - 1).clamp(from, to)
    }
}

fn start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(START.0, START.1, START.2).expect("valid date")
}

fn poisson(rng: &mut impl Rng, mean: f64) -> u64 {
    // Knuth for small means, normal approximation above.
    if mean > 30.0 {
        let z: f64 = (0..12).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 6.0;
        return (mean + z * mean.sqrt()).round().max(0.0) as u64;
    }
    let l = (-mean).exp();
    let (mut k, mut p) = (0u64, 1.0);
    loop {
        p *= rng.r#gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// Writes the extracts and synth.json into `out_dir`: the world is planned first
/// (`plan`), then written file by file (`write`), all from one seeded generator.
pub fn generate(params: &ValidSynthParams, out_dir: &Path) -> Result<SynthReport> {
    let p = &params.0;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let start = start_date();
    let world = plan::World::plan(&mut rng, &Calendar::new(), p);
    if p.layout == SynthLayout::Flat {
        return generate_flat(rng, &world, p, out_dir);
    }
    let tx_path = out_dir.join("transactions.csv");
    let file = std::fs::File::create(&tx_path).map_err(|e| Error::io(&tx_path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let layout = write::Layout::Normal;
    let transactions = write::transactions(&mut rng, &world, p, start, (&mut w, &tx_path), layout)?;
    let (customers, prospects, opt_in) = write::customers(&mut rng, &world, p, start, out_dir)?;
    let products = write::products(&mut rng, &world, out_dir)?;
    let campaigns = write::campaigns(start, out_dir)?;
    let contacts = write::contacts(&mut rng, &world, start, out_dir)?;
    let (consent, events) = write::consent_events(&mut rng, &world, &opt_in, start, out_dir)?;
    let (web_events, web) =
        web::web_events(p.seed, &world, &transactions.web_orders, start, out_dir)?;
    let files = serde_json::json!({
        "transactions.csv": transactions.defects,
        "customers.csv": customers,
        "products.csv": products,
        "campaigns.csv": campaigns,
        "campaign_contacts.csv": contacts,
        "consent_events.csv": consent,
        "web_events.csv": web_events,
    });
    let planted = serde_json::json!({
        "campaigns": plan::planted_campaigns(),
        "consent_events": events,
        "web": web,
    });
    write::manifest(&world, p, start, &transactions, files, planted, out_dir)?;
    Ok(SynthReport {
        customers: world.customers.len() as u64 + prospects,
        products: world.products.len() as u64 + 5,
        order_lines: transactions.defects.rows_written,
        campaign_contacts: contacts.rows_written,
        web_events: web_events.rows_written,
    })
}

/// The flat layout: a dry run of the normal order lines and customer file (into nothing)
/// draws each customer's birth date and city as the normal layout would; then the same
/// order lines are drawn again and written flat with them.
fn generate_flat(
    mut rng: Xoshiro256PlusPlus,
    world: &plan::World,
    p: &SynthParams,
    out_dir: &Path,
) -> Result<SynthReport> {
    let start = start_date();
    let mut dry = rng.clone();
    let nowhere = (
        &mut std::io::sink() as &mut dyn std::io::Write,
        Path::new("-"),
    );
    write::transactions(&mut dry, world, p, start, nowhere, write::Layout::Normal)?;
    let people = write::customer_rows(&mut dry, world, p, start).people;

    let path = out_dir.join("flat.csv");
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let layout = write::Layout::Flat(&people);
    let flat = write::transactions(&mut rng, world, p, start, (&mut w, &path), layout)?;
    let files = serde_json::json!({ "flat.csv": flat.defects });
    let planted = serde_json::json!({});
    write::manifest(world, p, start, &flat, files, planted, out_dir)?;
    Ok(SynthReport {
        customers: 0,
        products: 0,
        order_lines: flat.defects.rows_written,
        campaign_contacts: 0,
        web_events: 0,
    })
}

fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ä' | 'á' => 'a',
            'ë' | 'é' | 'è' | 'É' => 'e',
            'ö' | 'ø' | 'Ø' => 'o',
            'ü' | 'ú' => 'u',
            'ñ' => 'n',
            'í' => 'i',
            'ç' => 'c',
            c => c,
        })
        .collect()
}
