//! `web_events.csv`: the web shop's click-stream, consistent with its orders.
//!
//! Drawn from its own generator (seeded from the seed), after every other file, so adding
//! it changed no byte of the others.
//!
//! - Visitors: each customer browses from one device, or two (a phone and a computer), each
//!   an anonymous cookie id; a guest order comes from a visitor of its own who never logs in.
//! - Shopping sessions follow a planted funnel: a session views products; it adds one to
//!   the cart with probability [`FUNNEL`]`[0]`, goes on to the checkout with `[1]`, and buys
//!   with `[2]`. Every web order (an invoice of channel `web` that loads) is the purchase of
//!   one session, whose purchase event carries the invoice number; the sessions before it
//!   that stopped short (abandoned carts and checkouts among them) are drawn the same way
//!   until one buys, on the days before.
//! - Logins: a customer logs in at the checkout of their first purchase on a device; from
//!   then on the device's events carry the customer id. The sessions before, anonymous, are
//!   theirs by stitching (`synth.json` records every customer visitor).
//! - "Browsed but stopped buying": lapsing customers who go on viewing products after their
//!   last order, without a cart (`synth.json` lists them and counts those sessions).
//! - Channels per session (organic, paid search, e-mail, social, direct), devices per
//!   visitor; pages are `/`, `/c/CATEGORY`, `/p/CODE`, `/cart`, `/checkout`, `/login`,
//!   `/checkout/complete`.
//! - Defects: events fired twice (exact duplicates) and impossible dates (bad_date).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::plan::World;
use super::write::WebOrder;
use super::{CATEGORIES, FileDefects, Group, pick};
use crate::error::{Error, Result};

/// Planted step rates of a shopping session: view → cart, cart → checkout, checkout →
/// purchase.
pub(super) const FUNNEL: [f64; 3] = [0.45, 0.65, 0.8];
/// The share of lapsing customers who keep browsing after their last order.
const BROWSE_AFTER_LAPSE: f64 = 0.6;
const SOURCES: [(&str, &str); 5] = [
    ("organic", "https://www.google.com/"),
    ("paid_search", "https://www.google.com/aclk"),
    ("email", ""),
    ("social", "https://www.instagram.com/"),
    ("direct", ""),
];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
/// Salt of the click-stream's own generator.
const SALT: u64 = 0x7765_625f_6576_7473;

/// One event as written.
struct Event {
    at: NaiveDateTime,
    kind: &'static str,
    visitor: usize,
    customer: Option<u32>,
    /// The product viewed or added; for a page view, the one whose category page it is.
    product: Option<usize>,
    order: Option<u64>,
    source: usize,
}

/// A visitor: the cookie id, the device, the customer (None: a guest), and when the
/// customer first logged in on it (from then on its events carry the customer id).
struct Visitor {
    id: String,
    device: &'static str,
    customer: Option<u32>,
    login_at: Option<NaiveDateTime>,
}

/// What synth.json records of the click-stream.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct Planted {
    pub funnel_rates: [f64; 3],
    /// Sessions drawn, by the step they reached (1 view … 4 purchase), shopping sessions only.
    pub sessions_by_depth: [u64; 4],
    /// Sessions of customers who kept browsing after their last order (views only).
    pub browse_after_lapse_sessions: u64,
    pub browsed_but_stopped_buying: Vec<String>,
    /// Every visitor a customer logged in on: cookie id → customer id.
    pub visitors: BTreeMap<String, String>,
    pub purchases: u64,
}

/// Writes `web_events.csv` for the web orders of `orders` (in time order).
pub(super) fn web_events(
    seed: u64,
    world: &World,
    orders: &[WebOrder],
    start: NaiveDate,
    out_dir: &Path,
) -> Result<(FileDefects, Planted)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ SALT);
    let mut visitors: Vec<Visitor> = Vec::new();
    let mut devices: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut planted = Planted {
        funnel_rates: FUNNEL,
        ..Planted::default()
    };
    let mut events: Vec<Event> = Vec::new();
    // The log covers the days of the web orders, so it adds no day to the warehouse.
    let (Some(first), Some(last)) = (orders.first(), orders.last()) else {
        return Ok((
            write(&mut rng, world, &visitors, &events, out_dir)?,
            planted,
        ));
    };
    let first = first.when.date().and_hms_opt(0, 0, 0).expect("midnight");
    let last_day = (last.when.date() - start).num_days();
    for o in orders {
        let v = match o.customer {
            Some(c) => {
                let own = devices
                    .entry(c)
                    .or_insert_with(|| new_devices(&mut rng, &mut visitors, c));
                *pick(&mut rng, own)
            }
            None => new_visitor(&mut rng, &mut visitors, None),
        };
        // Sessions that stopped short, on the days before, until one buys.
        let mut day = 0;
        while let Some(depth) = attempt(&mut rng) {
            day += rng.gen_range(1..6);
            let at = o.when - Duration::days(day) - Duration::minutes(rng.gen_range(0..600));
            if at < first {
                // Before the log begins: not in it (nor counted).
                continue;
            }
            planted.sessions_by_depth[depth - 1] += 1;
            session(
                &mut rng,
                world,
                &mut visitors[v],
                v,
                at,
                depth,
                None,
                &mut events,
            );
        }
        planted.sessions_by_depth[3] += 1;
        planted.purchases += 1;
        session(
            &mut rng,
            world,
            &mut visitors[v],
            v,
            o.when,
            4,
            Some(o),
            &mut events,
        );
    }
    let days = (start, last_day);
    browse_after_lapse(
        &mut rng,
        world,
        &devices,
        &mut visitors,
        days,
        &mut events,
        &mut planted,
    );
    // The devices a customer logged in on: the others stay anonymous.
    for (c, vs) in &devices {
        for &v in vs.iter().filter(|&&v| visitors[v].login_at.is_some()) {
            let id = world.customers[*c as usize].id.clone();
            planted.visitors.insert(visitors[v].id.clone(), id);
        }
    }
    events.sort_by(|a, b| a.at.cmp(&b.at).then(a.visitor.cmp(&b.visitor)));
    let fx = write(&mut rng, world, &visitors, &events, out_dir)?;
    Ok((fx, planted))
}

/// A customer's devices: one, or a phone and a computer.
fn new_devices(rng: &mut Xoshiro256PlusPlus, visitors: &mut Vec<Visitor>, c: u32) -> Vec<usize> {
    let n = if rng.gen_bool(0.3) { 2 } else { 1 };
    (0..n)
        .map(|_| new_visitor(rng, visitors, Some(c)))
        .collect()
}

fn new_visitor(rng: &mut Xoshiro256PlusPlus, visitors: &mut Vec<Visitor>, c: Option<u32>) -> usize {
    visitors.push(Visitor {
        id: format!("{:016x}", rng.r#gen::<u64>()),
        device: DEVICES[rng.gen_range(0..DEVICES.len())],
        customer: c,
        login_at: None,
    });
    visitors.len() - 1
}

/// One shopping session drawn through the planted funnel: Some(depth reached, 1–3) when it
/// stops short, None when it buys.
fn attempt(rng: &mut Xoshiro256PlusPlus) -> Option<usize> {
    for (k, rate) in FUNNEL.iter().enumerate() {
        if !rng.gen_bool(*rate) {
            return Some(k + 1);
        }
    }
    None
}

/// One session of `depth` steps (1 views, 2 + cart, 3 + checkout, 4 + purchase of `order`)
/// ending at `end` (a purchase) or starting at `end` (otherwise).
#[allow(clippy::too_many_arguments)]
fn session(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    visitor: &mut Visitor,
    v: usize,
    end: NaiveDateTime,
    depth: usize,
    order: Option<&WebOrder>,
    out: &mut Vec<Event>,
) {
    let source = rng.gen_range(0..SOURCES.len());
    let mut views: Vec<usize> = match order {
        Some(o) => o.products.clone(),
        None => (0..rng.gen_range(1..4))
            .map(|_| world.popularity.pick(rng))
            .collect(),
    };
    views.truncate(3);
    let mut steps: Vec<(&'static str, Option<usize>)> = vec![("page_view", Some(views[0]))];
    steps.extend(views.iter().map(|&p| ("product_view", Some(p))));
    if depth >= 2 {
        steps.push(("add_to_cart", Some(views[0])));
    }
    if depth >= 3 {
        steps.push(("checkout", None));
        if depth == 4 && visitor.customer.is_some() && visitor.login_at.is_none() {
            steps.push(("login", None));
        }
    }
    if depth == 4 {
        steps.push(("purchase", None));
    }
    let gaps: Vec<i64> = (1..steps.len()).map(|_| rng.gen_range(20..240)).collect();
    let total: i64 = gaps.iter().sum();
    let mut at = if order.is_some() {
        end - Duration::seconds(total)
    } else {
        end
    };
    for (i, (kind, product)) in steps.into_iter().enumerate() {
        if i > 0 {
            at += Duration::seconds(gaps[i - 1]);
        }
        if kind == "login" {
            visitor.login_at = Some(at);
        }
        out.push(Event {
            at,
            kind,
            visitor: v,
            customer: visitor
                .customer
                .filter(|_| visitor.login_at.is_some_and(|l| l <= at)),
            product,
            order: (kind == "purchase")
                .then(|| order.map(|o| o.invoice))
                .flatten(),
            source,
        });
    }
}

/// Lapsing customers who keep looking after their last order: view-only sessions between
/// their lapse and the day before the last web order.
fn browse_after_lapse(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    devices: &BTreeMap<u32, Vec<usize>>,
    visitors: &mut [Visitor],
    (start, last_day): (NaiveDate, i64),
    events: &mut Vec<Event>,
    planted: &mut Planted,
) {
    for (c, vs) in devices {
        let cust = &world.customers[*c as usize];
        let (Group::Lapsing, Some(lapse)) = (cust.group, cust.lapse) else {
            continue;
        };
        if !rng.gen_bool(BROWSE_AFTER_LAPSE) {
            continue;
        }
        // On a device they logged in on, so the visits are known to be theirs.
        let known: Vec<usize> = vs
            .iter()
            .copied()
            .filter(|&v| visitors[v].login_at.is_some())
            .collect();
        if known.is_empty() || lapse + 1 >= last_day {
            continue;
        }
        planted.browsed_but_stopped_buying.push(cust.id.clone());
        for _ in 0..rng.gen_range(2..7) {
            let day = rng.gen_range(lapse + 1..last_day);
            let at = start.and_hms_opt(8, 0, 0).expect("valid time")
                + Duration::days(day)
                + Duration::minutes(rng.gen_range(0..800));
            let v = *pick(rng, &known);
            planted.browse_after_lapse_sessions += 1;
            session(rng, world, &mut visitors[v], v, at, 1, None, events);
        }
    }
}

/// An event's page: the category page it shows, the product, or the step's own page.
fn page(world: &World, e: &Event) -> String {
    let product = || e.product.map(|p| &world.products[p]);
    match (e.kind, product()) {
        ("page_view", Some(p)) => format!("/c/{}", CATEGORIES[p.category].0.to_lowercase()),
        ("product_view", Some(p)) => format!("/p/{}", p.code),
        ("add_to_cart", _) => "/cart".into(),
        ("checkout", _) => "/checkout".into(),
        ("login", _) => "/login".into(),
        ("purchase", _) => "/checkout/complete".into(),
        _ => "/".into(),
    }
}

/// The file: a tracking tool's export (ISO times with a Z, its own column names), streamed.
fn write(
    rng: &mut Xoshiro256PlusPlus,
    world: &World,
    visitors: &[Visitor],
    events: &[Event],
    out_dir: &Path,
) -> Result<FileDefects> {
    let path = out_dir.join("web_events.csv");
    let io = |e: std::io::Error| Error::io(&path, e);
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut fx = FileDefects::default();
    w.write_all(b"event_time,event,anonymous_id,user_id,url,sku,category,price,referrer,utm_source,device,order_id\n")
        .map_err(io)?;
    let mut line = String::new();
    for e in events {
        line.clear();
        let v = &visitors[e.visitor];
        let (source, referrer) = SOURCES[e.source];
        let (sku, category, price) = match e.product.filter(|_| e.kind != "page_view") {
            Some(p) => {
                let prod = &world.products[p];
                (
                    prod.code.as_str(),
                    CATEGORIES[prod.category].0,
                    super::cents(prod.price_cents),
                )
            }
            None => ("", "", String::new()),
        };
        let mut ts = e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        if matches!(e.kind, "page_view" | "product_view") && rng.gen_bool(0.0005) {
            ts = e.at.format("%Y-02-30T%H:%M:%SZ").to_string();
            fx.reject("bad_date");
        }
        let customer = e
            .customer
            .map(|c| world.customers[c as usize].id.as_str())
            .unwrap_or("");
        let order = e.order.map(|o| o.to_string()).unwrap_or_default();
        let _ = writeln!(
            line,
            "{ts},{},{},{customer},{},{sku},{category},{price},{referrer},{source},{},{order}",
            e.kind,
            v.id,
            page(world, e),
            v.device
        );
        w.write_all(line.as_bytes()).map_err(io)?;
        fx.rows_written += 1;
        if rng.gen_bool(0.003) {
            w.write_all(line.as_bytes()).map_err(io)?;
            fx.rows_written += 1;
            fx.exact_duplicates += 1;
        }
    }
    w.flush().map_err(io)?;
    Ok(fx)
}
