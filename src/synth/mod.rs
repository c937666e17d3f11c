//! `ecrm synth`: a seeded generator of realistic, messy raw CRM extracts.
//!
//! - Input: [`SynthParams`] (seed 42, 2,000 customers, 50,000 order lines by default).
//! - Output, in `--out-dir`: `customers.csv` (Latin-1, `;`-separated), `products.csv`,
//!   `transactions.csv` (order lines), `campaign_contacts.csv`, and `synth.json`, which records
//!   what was planted: each customer's group, lapse dates, co-purchase groups, follow-up
//!   sequences, and the exact count of every defect per file, so tests can check that ingest
//!   and mining recover it.
//!
//! Realism: two years of trade (2023–2024) with a Christmas peak and quiet weekends; products
//! in categories and subcategories with a Zipf long tail; four customer groups — one-time
//! buyers (who may come back at any time, rarely: most never do within the data), loyal
//! repeaters, big-basket wholesale buyers, and customers who lapse part-way through the period;
//! co-purchase groups (bundles bought together) and follow-ups (A now, B on the next visit);
//! guest checkouts; returns as `C`-prefixed cancellation invoices; campaign responses that
//! depend on the group.
//!
//! Messiness, each defect planted on otherwise clean rows, one defect per row, and counted:
//! exact duplicate rows, trailing spaces, lower-case product codes, two date formats, blank
//! customer ids (guests), zero and negative quantities, unparseable numbers and dates,
//! unknown product and customer codes, ragged lines, Latin-1 text.
//!
//! It streams: invoices are planned in memory (a few bytes each), lines are generated and
//! written one invoice at a time.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
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
}

impl Default for SynthParams {
    /// Seed 42, 2,000 customers, 50,000 order lines: the committed sample data.
    fn default() -> Self {
        SynthParams {
            seed: 42,
            customers: 2_000,
            order_lines: 50_000,
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

/// Writes the extracts and synth.json into `out_dir`.
pub fn generate(params: &ValidSynthParams, out_dir: &Path) -> Result<SynthReport> {
    let p = &params.0;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let cal = Calendar::new();
    let start = start_date();

    // Products: sold catalogue (Zipf popularity) plus unsold extras that carry planted defects.
    let n_products = ((p.order_lines / 100).clamp(200, 5000)) as usize;
    let mut products = Vec::with_capacity(n_products);
    let mut used_codes = std::collections::HashSet::new();
    while products.len() < n_products {
        let mut code = format!("{}", rng.gen_range(10000..99999));
        if rng.gen_bool(0.3) {
            code.push((b'A' + rng.gen_range(0..6u8)) as char);
        }
        if !used_codes.insert(code.clone()) {
            continue;
        }
        let category = rng.gen_range(0..CATEGORIES.len());
        let sub = rng.gen_range(0..3);
        let noun = CATEGORIES[category].1[sub]
            .trim_end_matches('s')
            .to_uppercase();
        let description = format!(
            "{} {} {}",
            pick(&mut rng, &ADJECTIVES),
            pick(&mut rng, &ADJECTIVES),
            noun
        );
        let price_cents = (rng.gen_range(0.0f64..1.0).powi(3) * 2000.0) as i64 + 29;
        products.push(Product {
            code,
            description,
            category,
            sub,
            price_cents,
        });
    }
    let zipf_cum: Vec<f64> = (0..n_products)
        .scan(0.0, |acc, i| {
            *acc += 1.0 / ((i + 1) as f64).powf(1.05);
            Some(*acc)
        })
        .collect();
    let zipf_total = *zipf_cum.last().expect("products exist");
    let popular = |rng: &mut Xoshiro256PlusPlus| -> usize {
        let x = rng.gen_range(0.0..zipf_total);
        zipf_cum.partition_point(|&c| c <= x).min(n_products - 1)
    };

    // Co-purchase groups and follow-ups, among mid-popularity products so they stand out.
    let mut bundles: Vec<Vec<usize>> = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for b in 0..8 {
        let size = 2 + b % 3;
        let mut g = Vec::new();
        while g.len() < size {
            let i = rng.gen_range(5..(n_products / 3).max(6));
            if taken.insert(i) {
                g.push(i);
            }
        }
        bundles.push(g);
    }
    let mut follow_ups: Vec<(usize, usize)> = Vec::new();
    while follow_ups.len() < 5 {
        let a = rng.gen_range(5..(n_products / 2).max(6));
        let b = rng.gen_range(5..(n_products / 2).max(6));
        if a != b && taken.insert(a) && taken.insert(b) {
            follow_ups.push((a, b));
        }
    }

    // Customers and their groups.
    let mut customers = Vec::with_capacity(p.customers as usize);
    for i in 0..p.customers {
        let r: f64 = rng.r#gen();
        let group = if r < 0.55 {
            Group::OneTime
        } else if r < 0.77 {
            Group::Loyal
        } else if r < 0.82 {
            Group::Wholesale
        } else {
            Group::Lapsing
        };
        // Repeat buyers join in the first part of the period so they have a history; lapsing
        // customers stop at least LAPSE_QUIET days before its end, so "lapsed" is visible in
        // their recency (a customer who stopped last week is not yet lapsed).
        let signup = match group {
            Group::Loyal | Group::Wholesale => rng.gen_range(0..DAYS / 3),
            Group::Lapsing => rng.gen_range(0..DAYS / 2),
            Group::OneTime => cal.day(&mut rng, 0, DAYS - 30),
        };
        let lapse = (group == Group::Lapsing)
            .then(|| rng.gen_range(signup + 90..(DAYS - LAPSE_QUIET).max(signup + 91)));
        let cr: f64 = rng.r#gen();
        let mut acc = 0.0;
        let mut country = 0;
        for (k, c) in COUNTRIES.iter().enumerate() {
            acc += c.3;
            if cr < acc {
                country = k;
                break;
            }
        }
        customers.push(Customer {
            id: format!("{}", 100_001 + i),
            group,
            signup,
            lapse,
            country,
        });
    }

    // Plan invoices: counts per group scaled so the lines come out near the target.
    let lines_per = |g: Group| match g {
        Group::OneTime => 3.0,
        Group::Loyal => 5.0,
        Group::Wholesale => 18.0,
        Group::Lapsing => 4.0,
    };
    let base_invoices = |g: Group| match g {
        // One purchase and, for some, returns. (This weight only scales the other groups'
        // invoices to the target.)
        Group::OneTime => 1.4,
        Group::Loyal => 10.0,
        Group::Wholesale => 14.0,
        Group::Lapsing => 5.0,
    };
    let guest_share = 0.06;
    let expected: f64 = customers
        .iter()
        .map(|c| lines_per(c.group) * base_invoices(c.group))
        .sum::<f64>()
        / (1.0 - guest_share);
    let scale = (p.order_lines as f64 * 1.15 / expected).max(0.05);
    let mut invoices: Vec<Invoice> = Vec::new();
    for (ci, c) in customers.iter().enumerate() {
        let days: Vec<i64> = match c.group {
            // A first-time buyer buys some time after signing up and may come back at any time,
            // rarely: gaps of two weeks plus an exponential with a long mean. Most never
            // return within the data, but none is certainly gone, unlike lapsing customers,
            // who buy often and then stop: the ones a churn model should rank first.
            Group::OneTime => {
                let mut day = cal.day(&mut rng, c.signup, DAYS - 1);
                let mut days = vec![day];
                loop {
                    let u: f64 = rng.r#gen();
                    day += 14 + (-OCCASIONAL_GAP * (1.0 - u).ln()) as i64;
                    if day >= DAYS {
                        break;
                    }
                    days.push(day);
                }
                days
            }
            g => {
                let n = poisson(&mut rng, base_invoices(g) * scale).max(2);
                let until = c.lapse.unwrap_or(DAYS - 1);
                (0..n).map(|_| cal.day(&mut rng, c.signup, until)).collect()
            }
        };
        for day in days {
            let minute = day * 1440 + rng.gen_range(8 * 60..20 * 60);
            invoices.push(Invoice {
                minute,
                customer: Some(ci as u32),
            });
        }
    }
    let guests = (invoices.len() as f64 * guest_share / (1.0 - guest_share)) as usize;
    for _ in 0..guests {
        let day = cal.day(&mut rng, 0, DAYS - 1);
        invoices.push(Invoice {
            minute: day * 1440 + rng.gen_range(8 * 60..20 * 60),
            customer: None,
        });
    }
    invoices.sort_by_key(|i| (i.minute, i.customer));

    // transactions.csv
    let tx_path = out_dir.join("transactions.csv");
    let file = std::fs::File::create(&tx_path).map_err(|e| Error::io(&tx_path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| Error::io(&tx_path, e);
    writeln!(
        w,
        "invoice,sku,item_description,qty,ordered_at,unit_price,customer,channel"
    )
    .map_err(io)?;
    let mut tx = FileDefects::default();
    let mut lines_written = 0u64;
    let mut guest_lines = 0u64;
    let mut guest_lines_loaded = 0u64;
    let mut cancellation_lines = 0u64;
    let mut pending_follow: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut invoice_no = 500_000u64;
    // Planned cancellations: (minute, customer, products and quantities returned).
    let mut returns: Vec<PlannedReturn> = Vec::new();
    let mut line = String::with_capacity(256);
    let mut basket: Vec<(usize, i64)> = Vec::new();
    'invoices: for inv in &invoices {
        invoice_no += 1;
        let group = inv.customer.map(|c| customers[c as usize].group);
        let mean = match group {
            Some(g) => lines_per(g),
            None => 3.0,
        };
        let n_lines = (1 + poisson(&mut rng, mean - 1.0)) as usize;
        basket.clear();
        let wholesale = group == Some(Group::Wholesale);
        let qty = |rng: &mut Xoshiro256PlusPlus| -> i64 {
            if wholesale {
                12 * rng.gen_range(1..13)
            } else {
                *pick(rng, &[1, 1, 1, 2, 2, 3, 4, 6, 12])
            }
        };
        if let Some(c) = inv.customer
            && let Some(items) = pending_follow.remove(&c)
        {
            for b in items {
                if rng.gen_bool(0.7) && !basket.iter().any(|(i, _)| *i == b) {
                    let q = qty(&mut rng);
                    basket.push((b, q));
                }
            }
        }
        if rng.gen_bool(0.25) {
            let b = rng.gen_range(0..bundles.len());
            for &i in &bundles[b] {
                if rng.gen_bool(0.9) && !basket.iter().any(|(x, _)| *x == i) {
                    let q = qty(&mut rng);
                    basket.push((i, q));
                }
            }
        }
        while basket.len() < n_lines {
            let i = popular(&mut rng);
            if !basket.iter().any(|(b, _)| *b == i) {
                let q = qty(&mut rng);
                basket.push((i, q));
            }
        }
        if let Some(c) = inv.customer {
            for (a, b) in &follow_ups {
                if basket.iter().any(|(i, _)| i == a) && group != Some(Group::OneTime) {
                    pending_follow.entry(c).or_default().push(*b);
                }
            }
        }
        let when = start.and_hms_opt(0, 0, 0).expect("midnight") + Duration::minutes(inv.minute);
        let customer = inv
            .customer
            .map(|c| customers[c as usize].id.as_str())
            .unwrap_or("");
        let channel = *pick(&mut rng, &CHANNELS);
        for &(pi, q) in basket.iter() {
            if lines_written >= p.order_lines {
                break 'invoices;
            }
            let prod = &products[pi];
            let defect = write_order_line(
                &mut rng,
                &mut line,
                &invoice_no.to_string(),
                prod,
                q,
                when,
                customer,
                channel,
                &mut tx,
            );
            w.write_all(line.as_bytes()).map_err(io)?;
            tx.rows_written += 1;
            lines_written += 1;
            if customer.is_empty() {
                guest_lines += 1;
                if defect.is_none() {
                    guest_lines_loaded += 1;
                }
            }
            if rng.gen_bool(0.004) {
                w.write_all(line.as_bytes()).map_err(io)?;
                tx.rows_written += 1;
                tx.exact_duplicates += 1;
                if customer.is_empty() {
                    guest_lines += 1;
                }
            }
        }
        if inv.customer.is_some() && rng.gen_bool(0.02) {
            let back: Vec<(usize, i64)> = basket.iter().take(2).copied().collect();
            returns.push((
                inv.minute + rng.gen_range(1440..20 * 1440),
                inv.customer,
                back,
            ));
        }
    }
    // Cancellations, after their invoices (their own numbers, `C` prefix).
    returns.sort_by_key(|r| r.0);
    for (minute, c, back) in returns {
        if minute / 1440 >= DAYS {
            continue;
        }
        invoice_no += 1;
        let when = start.and_hms_opt(0, 0, 0).expect("midnight") + Duration::minutes(minute);
        let customer = c.map(|c| customers[c as usize].id.as_str()).unwrap_or("");
        for (pi, q) in back {
            let prod = &products[pi];
            line.clear();
            line.push_str(&format!(
                "C{invoice_no},{},{},{},{},{},{customer},web\n",
                prod.code,
                prod.description,
                -q,
                when.format("%Y-%m-%d %H:%M:%S"),
                cents(prod.price_cents)
            ));
            w.write_all(line.as_bytes()).map_err(io)?;
            tx.rows_written += 1;
            cancellation_lines += 1;
        }
    }
    w.flush().map_err(io)?;

    // customers.csv: Latin-1, `;`-separated, plus prospects that carry rejected defects.
    let cu_path = out_dir.join("customers.csv");
    let mut cu = FileDefects::default();
    let mut text = String::from(
        "customer_id;email;name;gender;birth_date;country;region;city;signup_date;acquisition_channel;email_opt_in;phone_opt_in\n",
    );
    let n_prospects = (p.customers / 50).max(2);
    for (i, c) in customers
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64, Some(c)))
        .chain((0..n_prospects).map(|i| (p.customers + i, None)))
    {
        let id = match c {
            Some(c) => c.id.clone(),
            None => format!("{}", 100_001 + i),
        };
        let first = pick(&mut rng, &FIRST_NAMES);
        let last = pick(&mut rng, &LAST_NAMES);
        let country = &COUNTRIES[c.map(|c| c.country).unwrap_or(0)];
        let city = pick(&mut rng, &country.2);
        let birth = NaiveDate::from_ymd_opt(
            rng.gen_range(1950..2005),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
        )
        .expect("valid date");
        let signup = start + Duration::days(c.map(|c| c.signup).unwrap_or(0));
        let email_in = if rng.gen_bool(0.6) { "Y" } else { "N" };
        let phone_in = if rng.gen_bool(0.3) { "Y" } else { "N" };
        let gender = *pick(&mut rng, &["F", "M", "X", ""]);
        let mut email = format!(
            "{}.{}{}@example.com",
            ascii_fold(first).to_lowercase(),
            ascii_fold(last).to_lowercase().replace('\'', ""),
            i
        );
        let mut birth_text = birth.format("%Y-%m-%d").to_string();
        if c.is_none() {
            // Prospects: never bought, never contacted; their rows carry the rejected defects.
            birth_text = format!("{}-02-30", rng.gen_range(1950..2000));
            cu.reject("bad_date");
        } else if rng.gen_bool(0.05) {
            email.push_str("  ");
            cu.repair("trailing_spaces");
        }
        let row = format!(
            "{id};{email};{first} {last};{gender};{birth_text};{};{};{city};{};{};{email_in};{phone_in}\n",
            country.0,
            country.1,
            signup.format("%Y-%m-%d"),
            pick(&mut rng, &ACQUISITION),
        );
        text.push_str(&row);
        cu.rows_written += 1;
        if c.is_some() && rng.gen_bool(0.01) {
            text.push_str(&row);
            cu.rows_written += 1;
            cu.exact_duplicates += 1;
        }
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    if unmappable {
        return Err(Error::Internal(
            "synth wrote a character Latin-1 cannot hold".into(),
        ));
    }
    std::fs::write(&cu_path, &bytes).map_err(|e| Error::io(&cu_path, e))?;

    // products.csv, plus unsold extras with an unparseable cost (rejected without cascade).
    let pr_path = out_dir.join("products.csv");
    let mut pr = FileDefects::default();
    let mut text = String::from("sku,description,category,subcategory,unit_cost\n");
    for prod in &products {
        let mut code = prod.code.clone();
        if rng.gen_bool(0.03) && code.chars().any(|c| c.is_ascii_uppercase()) {
            code = code.to_lowercase();
            pr.repair("lower_case_codes");
        }
        let cost = cents(prod.price_cents * 55 / 100);
        text.push_str(&format!(
            "{code},{},{},{},{cost}\n",
            prod.description, CATEGORIES[prod.category].0, CATEGORIES[prod.category].1[prod.sub]
        ));
        pr.rows_written += 1;
    }
    for k in 0..5 {
        text.push_str(&format!("9900{k}X,UNSOLD SAMPLE {k},Home,Candles,n/a{k}\n"));
        pr.rows_written += 1;
        pr.reject("bad_number");
    }
    std::fs::write(&pr_path, text).map_err(|e| Error::io(&pr_path, e))?;

    // campaign_contacts.csv: monthly campaigns to opted-in customers; response by group.
    let cc_path = out_dir.join("campaign_contacts.csv");
    let mut cc = FileDefects::default();
    let mut text =
        String::from("campaign_id,customer_id,contacted_at,channel,responded,responded_at\n");
    for m in 0..24i64 {
        let campaign = format!("CMP-{:04}-{:02}", 2023 + m / 12, m % 12 + 1);
        let day = (m * 30 + 3).min(DAYS - 20);
        for c in customers.iter() {
            if c.signup > day || !rng.gen_bool(0.12) {
                continue;
            }
            let rate = match c.group {
                Group::Loyal => 0.25,
                Group::Wholesale => 0.12,
                Group::Lapsing => {
                    if c.lapse.is_some_and(|l| l < day) {
                        0.01
                    } else {
                        0.08
                    }
                }
                Group::OneTime => 0.03,
            };
            let when = start.and_hms_opt(9, 0, 0).expect("valid time") + Duration::days(day);
            let responded = rng.gen_bool(rate);
            let resp = if responded {
                (when + Duration::hours(rng.gen_range(1..24 * 14)))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            } else {
                String::new()
            };
            let row = format!(
                "{campaign},{},{},{},{},{resp}\n",
                c.id,
                when.format("%Y-%m-%d %H:%M:%S"),
                if rng.gen_bool(0.8) { "email" } else { "phone" },
                if responded { "yes" } else { "no" }
            );
            text.push_str(&row);
            cc.rows_written += 1;
            if rng.gen_bool(0.003) {
                text.push_str(&row);
                cc.rows_written += 1;
                cc.exact_duplicates += 1;
            }
        }
        // A contact for an id that is no customer.
        text.push_str(&format!(
            "{campaign},P{m:05},2023-06-01 09:00:00,email,no,\n"
        ));
        cc.rows_written += 1;
        cc.reject("unknown_customer");
    }
    std::fs::write(&cc_path, text).map_err(|e| Error::io(&cc_path, e))?;

    // synth.json
    let manifest = serde_json::json!({
        "seed": p.seed,
        "params": { "customers": p.customers, "order_lines": p.order_lines },
        "period": { "first_day": start.to_string(), "last_day": (start + Duration::days(DAYS - 1)).to_string() },
        "files": {
            "transactions.csv": tx,
            "customers.csv": cu,
            "products.csv": pr,
            "campaign_contacts.csv": cc,
        },
        "guest_lines": guest_lines,
        "guest_lines_loaded": guest_lines_loaded,
        "cancellation_lines": cancellation_lines,
        "customer_groups": customers.iter().map(|c| (c.id.clone(), c.group)).collect::<BTreeMap<_, _>>(),
        "lapse_dates": customers.iter().filter_map(|c| c.lapse.map(|l| (c.id.clone(), (start + Duration::days(l)).to_string()))).collect::<BTreeMap<_, _>>(),
        "co_purchase_groups": bundles.iter().map(|g| g.iter().map(|&i| products[i].code.clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "follow_ups": follow_ups.iter().map(|(a, b)| [products[*a].code.clone(), products[*b].code.clone()]).collect::<Vec<_>>(),
    });
    let path = out_dir.join("synth.json");
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, body).map_err(|e| Error::io(&path, e))?;

    Ok(SynthReport {
        customers: customers.len() as u64 + n_prospects,
        products: products.len() as u64 + 5,
        order_lines: tx.rows_written,
        campaign_contacts: cc.rows_written,
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

/// Writes one order line into `line`, planting at most one defect, and counts it.
#[allow(clippy::too_many_arguments)]
fn write_order_line(
    rng: &mut Xoshiro256PlusPlus,
    line: &mut String,
    invoice: &str,
    prod: &Product,
    qty: i64,
    when: NaiveDateTime,
    customer: &str,
    channel: &str,
    fx: &mut FileDefects,
) -> Option<&'static str> {
    let mut code = prod.code.clone();
    let mut desc = prod.description.clone();
    let mut qty_text = qty.to_string();
    let mut price = cents(prod.price_cents);
    let mut ts = when.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut customer = customer.to_string();
    let mut extra = "";
    let r: f64 = rng.r#gen();
    let defect: Option<&'static str> = match r {
        x if x < 0.002 => {
            qty_text = "0".into();
            Some("zero_quantity")
        }
        x if x < 0.004 => {
            qty_text = format!("-{qty}");
            Some("stock_adjustment")
        }
        x if x < 0.005 => {
            qty_text = pick(rng, &["two", "1O", "3.5"]).to_string();
            Some("bad_number")
        }
        x if x < 0.006 => {
            price = format!("{price} GBP");
            Some("bad_number")
        }
        x if x < 0.0065 => {
            ts = format!("{}-13-{:02} 10:00:00", when.year(), when.day());
            Some("bad_date")
        }
        x if x < 0.0075 => {
            code = format!("{}Z", rng.gen_range(10000..99999));
            Some("unknown_product")
        }
        x if x < 0.008 && !customer.is_empty() => {
            customer = format!("9{}", rng.gen_range(10_000_000..99_999_999));
            Some("unknown_customer")
        }
        x if x < 0.0085 => {
            extra = ",EXTRA";
            Some("ragged_line")
        }
        x if x < 0.03 => {
            desc.push_str("   ");
            fx.repair("trailing_spaces");
            None
        }
        x if x < 0.05 && code.chars().any(|c| c.is_ascii_uppercase()) => {
            code = code.to_lowercase();
            fx.repair("lower_case_codes");
            None
        }
        x if x < 0.35 => {
            ts = when.format("%d/%m/%Y %H:%M").to_string();
            fx.repair("uk_date_format");
            None
        }
        _ => None,
    };
    if let Some(d) = defect {
        fx.reject(d);
    }
    line.clear();
    use std::fmt::Write as _;
    let _ = writeln!(
        line,
        "{invoice},{code},{desc},{qty_text},{ts},{price},{customer},{channel}{extra}"
    );
    defect
}
