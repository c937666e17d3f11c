//! Writing the planned world as raw extracts, each defect planted on an otherwise clean row
//! and counted ([`FileDefects`]), and the record of it all, `synth.json`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::plan::{World, lines_per};
use super::{
    ACQUISITION, CATEGORIES, CHANNELS, COUNTRIES, DAYS, FIRST_NAMES, FileDefects, Group, Invoice,
    LAST_NAMES, PlannedReturn, Product, SynthParams, ascii_fold, cents, pick,
};
use crate::error::{Error, Result};

/// What `transactions.csv` holds besides its defects.
pub(super) struct Transactions {
    pub defects: FileDefects,
    pub guest_lines: u64,
    /// Guest lines without a rejected defect.
    pub guest_lines_loaded: u64,
    pub cancellation_lines: u64,
}

/// `transactions.csv`: every invoice's lines (defects, duplicates and follow-ups planted),
/// then the cancellations of some, after their invoices.
pub(super) fn transactions(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
    out_dir: &Path,
) -> Result<Transactions> {
    let tx_path = out_dir.join("transactions.csv");
    let file = std::fs::File::create(&tx_path).map_err(|e| Error::io(&tx_path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| Error::io(&tx_path, e);
    writeln!(
        w,
        "invoice,sku,item_description,qty,ordered_at,unit_price,customer,channel"
    )
    .map_err(io)?;
    let mut out = Transactions {
        defects: FileDefects::default(),
        guest_lines: 0,
        guest_lines_loaded: 0,
        cancellation_lines: 0,
    };
    let tx = &mut out.defects;
    let mut lines_written = 0u64;
    let mut pending_follow: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut invoice_no = 500_000u64;
    // Planned cancellations: (minute, customer, products and quantities returned).
    let mut returns: Vec<PlannedReturn> = Vec::new();
    let mut line = String::with_capacity(256);
    'invoices: for inv in &world.invoices {
        invoice_no += 1;
        let basket = basket(rng, world, inv, &mut pending_follow);
        let when = start.and_hms_opt(0, 0, 0).expect("midnight") + Duration::minutes(inv.minute);
        let customer = inv
            .customer
            .map(|c| world.customers[c as usize].id.as_str())
            .unwrap_or("");
        let channel = *pick(rng, &CHANNELS);
        for &(pi, q) in basket.iter() {
            if lines_written >= p.order_lines {
                break 'invoices;
            }
            let prod = &world.products[pi];
            let defect = order_line(
                rng,
                &mut line,
                &invoice_no.to_string(),
                prod,
                q,
                when,
                customer,
                channel,
                tx,
            );
            w.write_all(line.as_bytes()).map_err(io)?;
            tx.rows_written += 1;
            lines_written += 1;
            if customer.is_empty() {
                out.guest_lines += 1;
                if defect.is_none() {
                    out.guest_lines_loaded += 1;
                }
            }
            if rng.gen_bool(0.004) {
                w.write_all(line.as_bytes()).map_err(io)?;
                tx.rows_written += 1;
                tx.exact_duplicates += 1;
                if customer.is_empty() {
                    out.guest_lines += 1;
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
    out.cancellation_lines =
        cancellations(&mut w, world, start, returns, invoice_no, tx).map_err(io)?;
    w.flush().map_err(io)?;
    Ok(out)
}

/// One invoice's products and quantities: a follow-up of the customer's last visit, perhaps
/// a co-purchase group, then popular products up to the invoice's line count.
fn basket(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    inv: &Invoice,
    pending_follow: &mut HashMap<u32, Vec<usize>>,
) -> Vec<(usize, i64)> {
    let group = inv.customer.map(|c| world.customers[c as usize].group);
    let mean = match group {
        Some(g) => lines_per(g),
        None => 3.0,
    };
    let n_lines = (1 + super::poisson(rng, mean - 1.0)) as usize;
    let mut basket: Vec<(usize, i64)> = Vec::new();
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
                let q = qty(rng);
                basket.push((b, q));
            }
        }
    }
    if rng.gen_bool(0.25) {
        let b = rng.gen_range(0..world.bundles.len());
        for &i in &world.bundles[b] {
            if rng.gen_bool(0.9) && !basket.iter().any(|(x, _)| *x == i) {
                let q = qty(rng);
                basket.push((i, q));
            }
        }
    }
    while basket.len() < n_lines {
        let i = world.popularity.pick(rng);
        if !basket.iter().any(|(b, _)| *b == i) {
            let q = qty(rng);
            basket.push((i, q));
        }
    }
    if let Some(c) = inv.customer {
        for (a, b) in &world.follow_ups {
            if basket.iter().any(|(i, _)| i == a) && group != Some(Group::OneTime) {
                pending_follow.entry(c).or_default().push(*b);
            }
        }
    }
    basket
}

/// The cancellations (`C` prefix, numbers after the last invoice's), in time order, those
/// inside the period; returns how many lines they took.
fn cancellations(
    w: &mut impl Write,
    world: &World,
    start: NaiveDate,
    mut returns: Vec<PlannedReturn>,
    mut invoice_no: u64,
    tx: &mut FileDefects,
) -> std::io::Result<u64> {
    let mut lines = 0;
    returns.sort_by_key(|r| r.0);
    for (minute, c, back) in returns {
        if minute / 1440 >= DAYS {
            continue;
        }
        invoice_no += 1;
        let when = start.and_hms_opt(0, 0, 0).expect("midnight") + Duration::minutes(minute);
        let customer = c
            .map(|c| world.customers[c as usize].id.as_str())
            .unwrap_or("");
        for (pi, q) in back {
            let prod = &world.products[pi];
            writeln!(
                w,
                "C{invoice_no},{},{},{},{},{},{customer},web",
                prod.code,
                prod.description,
                -q,
                when.format("%Y-%m-%d %H:%M:%S"),
                cents(prod.price_cents)
            )?;
            tx.rows_written += 1;
            lines += 1;
        }
    }
    Ok(lines)
}

/// Writes one order line into `line`, perhaps with one planted defect (counted in `fx`);
/// returns the reason code ingest must reject it with, if any.
#[allow(clippy::too_many_arguments)]
fn order_line(
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

/// `customers.csv`: Latin-1, `;`-separated, the customers and some prospects whose rows
/// carry the rejected defects; returns its defects and the number of prospects.
pub(super) fn customers(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
    out_dir: &Path,
) -> Result<(FileDefects, u64)> {
    let cu_path = out_dir.join("customers.csv");
    let mut cu = FileDefects::default();
    let mut text = String::from(
        "customer_id;email;name;gender;birth_date;country;region;city;signup_date;acquisition_channel;email_opt_in;phone_opt_in\n",
    );
    let n_prospects = (p.customers / 50).max(2);
    for (i, c) in world
        .customers
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64, Some(c)))
        .chain((0..n_prospects).map(|i| (p.customers + i, None)))
    {
        let id = match c {
            Some(c) => c.id.clone(),
            None => format!("{}", 100_001 + i),
        };
        let first = pick(rng, &FIRST_NAMES);
        let last = pick(rng, &LAST_NAMES);
        let country = &COUNTRIES[c.map(|c| c.country).unwrap_or(0)];
        let city = pick(rng, &country.2);
        let birth = NaiveDate::from_ymd_opt(
            rng.gen_range(1950..2005),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
        )
        .expect("valid date");
        let signup = start + Duration::days(c.map(|c| c.signup).unwrap_or(0));
        let email_in = if rng.gen_bool(0.6) { "Y" } else { "N" };
        let phone_in = if rng.gen_bool(0.3) { "Y" } else { "N" };
        let gender = *pick(rng, &["F", "M", "X", ""]);
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
            pick(rng, &ACQUISITION),
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
    Ok((cu, n_prospects))
}

/// `products.csv`, plus 5 unsold extras with an unparseable cost (rejected without
/// cascade).
pub(super) fn products(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    out_dir: &Path,
) -> Result<FileDefects> {
    let pr_path = out_dir.join("products.csv");
    let mut pr = FileDefects::default();
    let mut text = String::from("sku,description,category,subcategory,unit_cost\n");
    for prod in &world.products {
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
    Ok(pr)
}

/// `campaign_contacts.csv`: a monthly campaign to some customers, responses by group, and
/// each month a contact for an id that is no customer.
pub(super) fn contacts(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    start: NaiveDate,
    out_dir: &Path,
) -> Result<FileDefects> {
    let cc_path = out_dir.join("campaign_contacts.csv");
    let mut cc = FileDefects::default();
    let mut text =
        String::from("campaign_id,customer_id,contacted_at,channel,responded,responded_at\n");
    for m in 0..24i64 {
        let campaign = format!("CMP-{:04}-{:02}", 2023 + m / 12, m % 12 + 1);
        let day = (m * 30 + 3).min(DAYS - 20);
        for c in world.customers.iter() {
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
    Ok(cc)
}

/// The four files' defects, for `synth.json`.
pub(super) struct Files {
    pub transactions: Transactions,
    pub customers: FileDefects,
    pub products: FileDefects,
    pub contacts: FileDefects,
}

/// `synth.json`: the parameters, the period, each file's defects, and what was planted:
/// every customer's group, the lapse dates, the co-purchase groups and follow-ups.
pub(super) fn manifest(
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
    files: &Files,
    out_dir: &Path,
) -> Result<()> {
    let code = |i: &usize| world.products[*i].code.clone();
    let t = &files.transactions;
    let manifest = serde_json::json!({
        "seed": p.seed,
        "params": { "customers": p.customers, "order_lines": p.order_lines },
        "period": { "first_day": start.to_string(), "last_day": (start + Duration::days(DAYS - 1)).to_string() },
        "files": {
            "transactions.csv": t.defects,
            "customers.csv": files.customers,
            "products.csv": files.products,
            "campaign_contacts.csv": files.contacts,
        },
        "guest_lines": t.guest_lines,
        "guest_lines_loaded": t.guest_lines_loaded,
        "cancellation_lines": t.cancellation_lines,
        "customer_groups": world.customers.iter().map(|c| (c.id.clone(), c.group)).collect::<BTreeMap<_, _>>(),
        "lapse_dates": world.customers.iter().filter_map(|c| c.lapse.map(|l| (c.id.clone(), (start + Duration::days(l)).to_string()))).collect::<BTreeMap<_, _>>(),
        "co_purchase_groups": world.bundles.iter().map(|g| g.iter().map(code).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "follow_ups": world.follow_ups.iter().map(|(a, b)| [code(a), code(b)]).collect::<Vec<_>>(),
    });
    let path = out_dir.join("synth.json");
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, body).map_err(|e| Error::io(&path, e))
}
