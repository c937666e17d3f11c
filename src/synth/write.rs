//! Writing the planned world as raw extracts, each defect planted on an otherwise clean row
//! and counted ([`FileDefects`]), and the record of it all, `synth.json`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::plan::{CAMPAIGNS, RESPONSE_WINDOW_DAYS, World, campaign_day, lines_per};
use super::{
    ACQUISITION, CATEGORIES, CHANNELS, COUNTRIES, DAYS, FIRST_NAMES, FileDefects, Group, Invoice,
    LAST_NAMES, PlannedReturn, Product, SynthParams, ascii_fold, cents, pick,
};
use crate::error::{Error, Result};

/// What the order-line file holds besides its defects.
pub(super) struct Transactions {
    pub defects: FileDefects,
    pub guest_lines: u64,
    /// Guest lines without a rejected defect.
    pub guest_lines_loaded: u64,
    pub cancellation_lines: u64,
    /// Flat layout: lines of the normal extract a sales extract does not carry (stock
    /// write-offs, codes unknown to masters it does not have, repeated rows), by kind.
    pub left_out: BTreeMap<&'static str, u64>,
    /// Normal layout: the web shop's orders that load (at least one line without a
    /// rejected defect), in time order, for the click-stream (`super::web`).
    pub web_orders: Vec<WebOrder>,
}

/// An order placed on the web shop: its invoice number, time, customer (None: a guest) and
/// the products on its loaded lines.
pub(super) struct WebOrder {
    pub invoice: u64,
    pub when: NaiveDateTime,
    pub customer: Option<u32>,
    pub products: Vec<usize>,
}

/// How the order lines are written.
#[derive(Clone, Copy)]
pub(super) enum Layout<'a> {
    /// `transactions.csv`: invoices, times, unit prices; customers and products in their
    /// own files.
    Normal,
    /// `flat.csv`: one quoted file with a byte-order mark, `m/d/yyyy` days, no invoice, line
    /// totals and costs, and each customer's age group and area on every line.
    Flat(&'a People),
}

/// The customer attributes the flat layout repeats on every line, by customer index.
pub(super) struct People {
    pub birth: Vec<NaiveDate>,
    pub area: Vec<String>,
}

/// The order lines: every invoice's lines (defects, duplicates and follow-ups planted),
/// then the cancellations of some, after their invoices, written to `w` (`path` names it in
/// errors). The random draws do not depend on the layout, so both layouts (and a dry run
/// into `std::io::sink()`) describe the same lines.
pub(super) fn transactions(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
    (w, path): (&mut dyn Write, &Path),
    layout: Layout<'_>,
) -> Result<Transactions> {
    let io = |e: std::io::Error| Error::io(path, e);
    match layout {
        Layout::Normal => writeln!(
            w,
            "invoice,sku,item_description,qty,ordered_at,unit_price,customer,channel"
        ),
        Layout::Flat(_) => w.write_all(FLAT_HEADER.as_bytes()),
    }
    .map_err(io)?;
    let mut out = Transactions {
        defects: FileDefects::default(),
        guest_lines: 0,
        guest_lines_loaded: 0,
        cancellation_lines: 0,
        left_out: BTreeMap::new(),
        web_orders: Vec::new(),
    };
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
        let web = matches!(layout, Layout::Normal) && channel == "web";
        let mut order = WebOrder {
            invoice: invoice_no,
            when,
            customer: inv.customer,
            products: Vec::new(),
        };
        for &(pi, q) in basket.iter() {
            if lines_written >= p.order_lines {
                if !order.products.is_empty() {
                    out.web_orders.push(order);
                }
                break 'invoices;
            }
            let prod = &world.products[pi];
            let d = order_line(rng, prod, q, when, customer);
            if web && d.defect.is_none() {
                order.products.push(pi);
            }
            let sale = Sale {
                prod,
                when,
                customer: inv.customer,
                invoice: invoice_no,
                channel,
            };
            out.write_line((w, &mut line), layout, &d, &sale)
                .map_err(io)?;
            lines_written += 1;
            if rng.gen_bool(0.004) {
                out.write_again(w, layout, &line, inv.customer.is_none())
                    .map_err(io)?;
            }
        }
        if !order.products.is_empty() {
            out.web_orders.push(order);
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
    out.cancellation_lines = cancellations(
        w,
        world,
        start,
        returns,
        invoice_no,
        layout,
        &mut out.defects,
    )
    .map_err(io)?;
    w.flush().map_err(io)?;
    Ok(out)
}

/// One sale of an invoice, as the layouts write it.
struct Sale<'a> {
    prod: &'a Product,
    when: NaiveDateTime,
    /// None for a guest.
    customer: Option<u32>,
    invoice: u64,
    channel: &'a str,
}

impl Transactions {
    /// Writes one drawn line in `layout` into `line` and `w`, counting its defects; a line a
    /// flat extract does not carry is counted as left out instead (and `line` left empty).
    fn write_line(
        &mut self,
        (w, line): (&mut dyn Write, &mut String),
        layout: Layout<'_>,
        d: &Drawn,
        sale: &Sale<'_>,
    ) -> std::io::Result<()> {
        match layout {
            Layout::Normal => {
                d.normal(line, &sale.invoice.to_string(), sale.channel);
                d.count(&mut self.defects);
            }
            Layout::Flat(people) => {
                if let Some(kind) = d.left_out_of_flat() {
                    *self.left_out.entry(kind).or_insert(0) += 1;
                    line.clear();
                    return Ok(());
                }
                d.flat(line, sale.prod, sale.when, sale.customer, people);
                d.count_flat(&mut self.defects);
            }
        }
        w.write_all(line.as_bytes())?;
        self.defects.rows_written += 1;
        if sale.customer.is_none() {
            self.guest_lines += 1;
            self.guest_lines_loaded += u64::from(d.defect.is_none());
        }
        Ok(())
    }

    /// Writes the line just written once more, byte for byte (a planted exact duplicate);
    /// a flat extract's identical rows are real orders, so there it is left out.
    fn write_again(
        &mut self,
        w: &mut dyn Write,
        layout: Layout<'_>,
        line: &str,
        guest: bool,
    ) -> std::io::Result<()> {
        if let Layout::Flat(_) = layout {
            *self.left_out.entry("exact_duplicates").or_insert(0) += 1;
            return Ok(());
        }
        w.write_all(line.as_bytes())?;
        self.defects.rows_written += 1;
        self.defects.exact_duplicates += 1;
        if guest {
            self.guest_lines += 1;
        }
        Ok(())
    }
}

/// The flat layout's header, after a UTF-8 byte-order mark, every field quoted.
const FLAT_HEADER: &str = "\u{feff}\"TRANSACTION_DT\",\"CUSTOMER_ID\",\"AGE_GROUP\",\"PIN_CODE\",\"PRODUCT_SUBCLASS\",\"PRODUCT_ID\",\"AMOUNT\",\"ASSET\",\"SALES_PRICE\"\r\n";

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

/// The cancellations (`C` prefix, numbers after the last invoice's; in the flat layout
/// negative quantities and amounts), in time order, those inside the period; returns how many
/// lines they took.
#[allow(clippy::too_many_arguments)]
fn cancellations(
    w: &mut dyn Write,
    world: &World,
    start: NaiveDate,
    mut returns: Vec<PlannedReturn>,
    mut invoice_no: u64,
    layout: Layout<'_>,
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
            match layout {
                Layout::Normal => writeln!(
                    w,
                    "C{invoice_no},{},{},{},{},{},{customer},web",
                    prod.code,
                    prod.description,
                    -q,
                    when.format("%Y-%m-%d %H:%M:%S"),
                    cents(prod.price_cents)
                )?,
                Layout::Flat(people) => {
                    let mut line = String::new();
                    let d = Drawn::clean(prod, -q, when, customer);
                    d.flat(&mut line, prod, when, c, people);
                    w.write_all(line.as_bytes())?;
                }
            }
            tx.rows_written += 1;
            lines += 1;
        }
    }
    Ok(lines)
}

/// One order line's fields as drawn, with at most one planted defect: the reason code
/// ingest must reject it with, or the kind of defect the contract repairs.
struct Drawn {
    code: String,
    desc: String,
    qty_text: String,
    price: String,
    ts: String,
    customer: String,
    extra: &'static str,
    defect: Option<&'static str>,
    repaired: Option<&'static str>,
}

/// Draws one order line's fields and perhaps one defect.
fn order_line(
    rng: &mut Xoshiro256PlusPlus,
    prod: &Product,
    qty: i64,
    when: NaiveDateTime,
    customer: &str,
) -> Drawn {
    let mut d = Drawn::clean(prod, qty, when, customer);
    let r: f64 = rng.r#gen();
    match r {
        x if x < 0.002 => {
            d.qty_text = "0".into();
            d.defect = Some("zero_quantity");
        }
        x if x < 0.004 => {
            d.qty_text = format!("-{qty}");
            d.defect = Some("stock_adjustment");
        }
        x if x < 0.005 => {
            d.qty_text = pick(rng, &["two", "1O", "3.5"]).to_string();
            d.defect = Some("bad_number");
        }
        x if x < 0.006 => {
            d.price = format!("{} GBP", d.price);
            d.defect = Some("bad_number");
        }
        x if x < 0.0065 => {
            d.ts = format!("{}-13-{:02} 10:00:00", when.year(), when.day());
            d.defect = Some("bad_date");
        }
        x if x < 0.0075 => {
            d.code = format!("{}Z", rng.gen_range(10000..99999));
            d.defect = Some("unknown_product");
        }
        x if x < 0.008 && !d.customer.is_empty() => {
            d.customer = format!("9{}", rng.gen_range(10_000_000..99_999_999));
            d.defect = Some("unknown_customer");
        }
        x if x < 0.0085 => {
            d.extra = ",EXTRA";
            d.defect = Some("ragged_line");
        }
        x if x < 0.03 => {
            d.desc.push_str("   ");
            d.repaired = Some("trailing_spaces");
        }
        x if x < 0.05 && d.code.chars().any(|c| c.is_ascii_uppercase()) => {
            d.code = d.code.to_lowercase();
            d.repaired = Some("lower_case_codes");
        }
        x if x < 0.35 => {
            d.ts = when.format("%d/%m/%Y %H:%M").to_string();
            d.repaired = Some("uk_date_format");
        }
        _ => {}
    }
    d
}

impl Drawn {
    /// The line without a defect.
    fn clean(prod: &Product, qty: i64, when: NaiveDateTime, customer: &str) -> Drawn {
        Drawn {
            code: prod.code.clone(),
            desc: prod.description.clone(),
            qty_text: qty.to_string(),
            price: cents(prod.price_cents),
            ts: when.format("%Y-%m-%d %H:%M:%S").to_string(),
            customer: customer.to_string(),
            extra: "",
            defect: None,
            repaired: None,
        }
    }

    /// Counts the line's defect in `fx`.
    fn count(&self, fx: &mut FileDefects) {
        if let Some(d) = self.defect {
            fx.reject(d);
        }
        if let Some(r) = self.repaired {
            fx.repair(r);
        }
    }

    /// Counts the line's defect in `fx` as the flat layout writes it: the one repair that
    /// applies to it is a lower-case code (it has no descriptions and one date format).
    fn count_flat(&self, fx: &mut FileDefects) {
        if let Some(d) = self.defect {
            fx.reject(d);
        }
        if self.repaired == Some("lower_case_codes") {
            fx.repair("lower_case_codes");
        }
    }

    /// `transactions.csv`'s line.
    fn normal(&self, line: &mut String, invoice: &str, channel: &str) {
        use std::fmt::Write as _;
        line.clear();
        let Drawn {
            code,
            desc,
            qty_text,
            price,
            ts,
            customer,
            extra,
            ..
        } = self;
        let _ = writeln!(
            line,
            "{invoice},{code},{desc},{qty_text},{ts},{price},{customer},{channel}{extra}"
        );
    }

    /// Why a flat sales extract would not carry this line: a stock write-off is no sale, and
    /// a code unknown to a master file the extract does not have is no defect in it.
    fn left_out_of_flat(&self) -> Option<&'static str> {
        self.defect.filter(|d| {
            matches!(
                *d,
                "stock_adjustment" | "unknown_product" | "unknown_customer"
            )
        })
    }

    /// `flat.csv`'s line: the same sale with line total and line cost (55% of the price, as
    /// in the product file), the customer's age group on the day and area; a planted defect
    /// keeps its reason code (a bad amount, a month 13, an extra field) and the repairs that
    /// apply to this layout (lower-case codes) stay counted, the others do not.
    fn flat(
        &self,
        line: &mut String,
        prod: &Product,
        when: NaiveDateTime,
        customer: Option<u32>,
        people: &People,
    ) {
        use std::fmt::Write as _;
        let day = match self.defect {
            Some("bad_date") => format!("13/{}/{}", when.day(), when.year()),
            _ => format!("{}/{}/{}", when.month(), when.day(), when.year()),
        };
        let (age, area) = match customer.map(|c| c as usize) {
            Some(c) => (
                age_group(people.birth[c], when.date()),
                people.area[c].as_str(),
            ),
            None => ("", ""),
        };
        // A quantity that is no number gets the unit amounts (the line is rejected anyway).
        let q = self.qty_text.parse::<i64>().unwrap_or(1);
        let cost = cents(q * (prod.price_cents * 55 / 100));
        let mut total = cents(q * prod.price_cents);
        if self.price.ends_with(" GBP") {
            total.push_str(" GBP");
        }
        let extra = if self.extra.is_empty() {
            ""
        } else {
            ",\"EXTRA\""
        };
        line.clear();
        let _ = write!(
            line,
            "\"{day}\",\"{}\",\"{age}\",\"{area}\",\"{}\",\"{}\",\"{}\",\"{cost}\",\"{total}\"{extra}\r\n",
            self.customer,
            subclass(prod),
            self.code,
            self.qty_text,
        );
    }
}

/// A product's sub-category code, as a flat extract gives it: `1CCSSS`.
fn subclass(prod: &Product) -> String {
    format!("1{:02}{:03}", prod.category + 1, prod.sub + 1)
}

/// The age group of someone born on `birth` on `day`, in exact years: `<25`, `25-34`, …,
/// `65+` (the features' and the cube's bands).
pub(super) fn age_group(birth: NaiveDate, day: NaiveDate) -> &'static str {
    let ymd = |d: NaiveDate| d.year() * 10_000 + d.month() as i32 * 100 + d.day() as i32;
    match (ymd(day) - ymd(birth)) / 10_000 {
        a if a < 25 => "<25",
        a if a < 35 => "25-34",
        a if a < 45 => "35-44",
        a if a < 55 => "45-54",
        a if a < 65 => "55-64",
        _ => "65+",
    }
}

/// `customers.csv`: Latin-1, `;`-separated, the customers and some prospects whose rows
/// carry the rejected defects; returns its defects and the number of prospects.
pub(super) fn customers(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
    out_dir: &Path,
) -> Result<(FileDefects, u64, OptIns)> {
    let cu_path = out_dir.join("customers.csv");
    let rows = customer_rows(rng, world, p, start);
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&rows.text);
    if unmappable {
        return Err(Error::Internal(
            "synth wrote a character Latin-1 cannot hold".into(),
        ));
    }
    std::fs::write(&cu_path, &bytes).map_err(|e| Error::io(&cu_path, e))?;
    Ok((rows.defects, rows.prospects, rows.opt_in))
}

/// The customer file's text, its defects, the number of prospects, and each customer's
/// birth date and area (for the flat layout).
pub(super) struct CustomerRows {
    text: String,
    defects: FileDefects,
    prospects: u64,
    pub people: People,
    pub opt_in: OptIns,
}

/// Each customer's (email, phone) opt-in as the customer file gives it, by customer index.
pub(super) type OptIns = Vec<(bool, bool)>;

/// Draws the customer file's rows (see [`customers`]).
pub(super) fn customer_rows(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
) -> CustomerRows {
    let mut cu = FileDefects::default();
    let mut people = People {
        birth: Vec::with_capacity(world.customers.len()),
        area: Vec::with_capacity(world.customers.len()),
    };
    let mut text = String::from(
        "customer_id;email;name;gender;birth_date;country;region;city;signup_date;acquisition_channel;email_opt_in;phone_opt_in\n",
    );
    let n_prospects = (p.customers / 50).max(2);
    let mut opt_in = Vec::with_capacity(world.customers.len());
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
        if c.is_some() {
            people.birth.push(birth);
            people.area.push(area_code(city));
        }
        let (email_yes, phone_yes) = (rng.gen_bool(0.6), rng.gen_bool(0.3));
        if c.is_some() {
            opt_in.push((email_yes, phone_yes));
        }
        let email_in = if email_yes { "Y" } else { "N" };
        let phone_in = if phone_yes { "Y" } else { "N" };
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
    CustomerRows {
        text,
        defects: cu,
        prospects: n_prospects,
        people,
        opt_in,
    }
}

/// A postcode-area-like code of a city: its first three letters, folded to ASCII, upper case.
fn area_code(city: &str) -> String {
    ascii_fold(city)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(3)
        .collect::<String>()
        .to_uppercase()
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

/// Campaign `m`'s id: `CMP-YYYY-MM`.
pub(super) fn campaign_id(m: i64) -> String {
    format!("CMP-{:04}-{:02}", 2023 + m / 12, m % 12 + 1)
}

/// `campaigns.csv`: one row per monthly campaign: e-mail, 5 cents a contact and a fixed
/// cost, its offer, and the response window the uplift is planted in.
pub(super) fn campaigns(start: NaiveDate, out_dir: &Path) -> Result<FileDefects> {
    let path = out_dir.join("campaigns.csv");
    let mut cp = FileDefects::default();
    let mut text = String::from(
        "campaign_id,name,channel,start_date,end_date,cost_per_contact,fixed_cost,offer,response_window_days\n",
    );
    for m in 0..CAMPAIGNS {
        let day = start + Duration::days(campaign_day(m));
        let offer = ["10% off", "free delivery", "gift with order"][m as usize % 3];
        text.push_str(&format!(
            "{},{} newsletter,email,{},{},0.05,250.00,{offer},{RESPONSE_WINDOW_DAYS}\n",
            campaign_id(m),
            day.format("%B %Y"),
            day,
            day + Duration::days(RESPONSE_WINDOW_DAYS),
        ));
        cp.rows_written += 1;
    }
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(cp)
}

/// `campaign_contacts.csv`: the planned contacts with their arm (the control arm's rows
/// record who was held out); phone contacts carry their own cost; responses (treatment
/// only) by group; and each month a contact for an id that is no customer.
pub(super) fn contacts(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    start: NaiveDate,
    out_dir: &Path,
) -> Result<FileDefects> {
    let cc_path = out_dir.join("campaign_contacts.csv");
    let mut cc = FileDefects::default();
    let mut text = String::from(
        "campaign_id,customer_id,contacted_at,channel,responded,responded_at,arm,cost\n",
    );
    for (m, planned) in world
        .contacts
        .chunk_by(|a, b| a.campaign == b.campaign)
        .enumerate()
    {
        let campaign = campaign_id(m as i64);
        for k in planned {
            let c = &world.customers[k.customer as usize];
            let rate = match c.group {
                Group::Loyal => 0.25,
                Group::Wholesale => 0.12,
                Group::Lapsing if c.lapse.is_some_and(|l| l < k.day) => 0.01,
                Group::Lapsing => 0.08,
                Group::OneTime => 0.03,
            };
            let when = start.and_hms_opt(9, 0, 0).expect("valid time") + Duration::days(k.day);
            let responded = k.treated && rng.gen_bool(rate);
            let resp = if responded {
                (when + Duration::hours(rng.gen_range(1..24 * 14)))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            } else {
                String::new()
            };
            let row = format!(
                "{campaign},{},{},{},{},{resp},{},{}\n",
                c.id,
                when.format("%Y-%m-%d %H:%M:%S"),
                if k.phone { "phone" } else { "email" },
                if responded { "yes" } else { "no" },
                if k.treated { "treatment" } else { "control" },
                if k.phone && k.treated { "1.20" } else { "" },
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
            "{campaign},P{m:05},2023-06-01 09:00:00,email,no,,treatment,\n"
        ));
        cc.rows_written += 1;
        cc.reject("unknown_customer");
    }
    std::fs::write(&cc_path, text).map_err(|e| Error::io(&cc_path, e))?;
    Ok(cc)
}

/// A planted consent event (recorded in synth.json).
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct ConsentEvent {
    pub customer_id: String,
    pub channel: &'static str,
    pub status: &'static str,
    pub at: String,
}

/// `consent_events.csv`: consent changes over the period after the opt-in the customer file
/// records (given at sign-up): some customers who opted in withdraw later, some who did not
/// grant it later; plus a row with an unknown status and one for an id that is no customer.
pub(super) fn consent_events(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    opt_in: &[(bool, bool)],
    start: NaiveDate,
    out_dir: &Path,
) -> Result<(FileDefects, Vec<ConsentEvent>)> {
    let path = out_dir.join("consent_events.csv");
    let mut ce = FileDefects::default();
    let mut events = Vec::new();
    let mut text = String::from("customer_id,channel,status,event_ts,source\n");
    for (c, &(email, phone)) in world.customers.iter().zip(opt_in) {
        for (channel, flag, change) in [("email", email, 0.12), ("phone", phone, 0.05)] {
            if !rng.gen_bool(if flag { change } else { change / 2.0 }) {
                continue;
            }
            let day = rng.gen_range(c.signup + 1..DAYS);
            let at = start.and_hms_opt(0, 0, 0).expect("valid time")
                + Duration::days(day)
                + Duration::minutes(rng.gen_range(7 * 60..22 * 60));
            let (status, source) = if flag {
                ("withdrawn", "unsubscribe_link")
            } else {
                ("granted", "preference_centre")
            };
            let at = at.format("%Y-%m-%d %H:%M:%S").to_string();
            text.push_str(&format!("{},{channel},{status},{at},{source}\n", c.id));
            ce.rows_written += 1;
            events.push(ConsentEvent {
                customer_id: c.id.clone(),
                channel,
                status,
                at,
            });
        }
    }
    text.push_str("100001,email,maybe,2024-03-01 10:00:00,call_centre\n");
    ce.rows_written += 1;
    ce.reject("not_accepted");
    text.push_str("P00001,email,withdrawn,2024-03-01 10:00:00,call_centre\n");
    ce.rows_written += 1;
    ce.reject("unknown_customer");
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok((ce, events))
}

/// `synth.json`: the parameters, the period, each file's defects (`files`), and what was
/// planted: every customer's group, the lapse dates, the co-purchase groups and follow-ups.
pub(super) fn manifest(
    world: &World,
    p: &SynthParams,
    start: NaiveDate,
    t: &Transactions,
    files: serde_json::Value,
    planted: serde_json::Value,
    out_dir: &Path,
) -> Result<()> {
    let code = |i: &usize| world.products[*i].code.clone();
    let mut manifest = serde_json::json!({
        "seed": p.seed,
        "params": { "customers": p.customers, "order_lines": p.order_lines },
        "period": { "first_day": start.to_string(), "last_day": (start + Duration::days(DAYS - 1)).to_string() },
        "files": files,
        "guest_lines": t.guest_lines,
        "guest_lines_loaded": t.guest_lines_loaded,
        "cancellation_lines": t.cancellation_lines,
        "customer_groups": world.customers.iter().map(|c| (c.id.clone(), c.group)).collect::<BTreeMap<_, _>>(),
        "lapse_dates": world.customers.iter().filter_map(|c| c.lapse.map(|l| (c.id.clone(), (start + Duration::days(l)).to_string()))).collect::<BTreeMap<_, _>>(),
        "co_purchase_groups": world.bundles.iter().map(|g| g.iter().map(code).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "follow_ups": world.follow_ups.iter().map(|(a, b)| [code(a), code(b)]).collect::<Vec<_>>(),
    });
    if let (Some(m), serde_json::Value::Object(more)) = (manifest.as_object_mut(), planted) {
        m.extend(more);
    }
    if p.layout != super::SynthLayout::Normal {
        manifest["layout"] = p.layout.name().into();
        manifest["left_out"] = serde_json::json!(t.left_out);
    }
    let path = out_dir.join("synth.json");
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, body).map_err(|e| Error::io(&path, e))
}
