//! The world the extracts describe, planned before a line is written: the products and
//! their popularity, the co-purchase groups and follow-ups, the customers and their groups,
//! and every invoice (when, and whose). The random draws happen in this order, so a seed
//! gives the same world, and the same files, every time.

use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{
    ADJECTIVES, CATEGORIES, COUNTRIES, Calendar, Contact, Customer, DAYS, Group, Invoice,
    LAPSE_QUIET, OCCASIONAL_GAP, Product, SynthParams, pick, poisson,
};

/// The share of invoices that are guest checkouts (no customer).
pub(super) const GUEST_SHARE: f64 = 0.06;

/// Everything the files are written from.
pub(super) struct World {
    pub products: Vec<Product>,
    pub popularity: Popularity,
    /// Products bought together (indices into `products`).
    pub bundles: Vec<Vec<usize>>,
    /// (A, B): a customer who buys A tends to buy B on the next visit.
    pub follow_ups: Vec<(usize, usize)>,
    pub customers: Vec<Customer>,
    /// Campaign contacts, by campaign, then customer.
    pub contacts: Vec<Contact>,
    /// In time order.
    pub invoices: Vec<Invoice>,
}

impl World {
    pub fn plan(rng: &mut Xoshiro256PlusPlus, cal: &Calendar, p: &SynthParams) -> World {
        let products = products(rng, p.order_lines);
        let popularity = Popularity::new(products.len());
        let (bundles, follow_ups) = groups(rng, products.len());
        let customers = customers(rng, cal, p.customers);
        let contacts = contacts(rng, &customers);
        let invoices = invoices(rng, cal, &customers, &contacts, p.order_lines);
        World {
            products,
            popularity,
            bundles,
            follow_ups,
            customers,
            contacts,
            invoices,
        }
    }
}

/// The sold catalogue: one product per hundred order lines (200 to 5,000), random codes,
/// descriptions of two adjectives and the subcategory's noun, skewed prices.
fn products(rng: &mut Xoshiro256PlusPlus, order_lines: u64) -> Vec<Product> {
    let n_products = ((order_lines / 100).clamp(200, 5000)) as usize;
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
            pick(rng, &ADJECTIVES),
            pick(rng, &ADJECTIVES),
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
    products
}

/// Zipf popularity over the products in catalogue order: product i sells in proportion to
/// 1 / (i + 1)^1.05.
pub(super) struct Popularity {
    cum: Vec<f64>,
    total: f64,
}

impl Popularity {
    fn new(n: usize) -> Popularity {
        let cum: Vec<f64> = (0..n)
            .scan(0.0, |acc, i| {
                *acc += 1.0 / ((i + 1) as f64).powf(1.05);
                Some(*acc)
            })
            .collect();
        let total = *cum.last().expect("products exist");
        Popularity { cum, total }
    }

    /// A product, by popularity.
    pub fn pick(&self, rng: &mut Xoshiro256PlusPlus) -> usize {
        let x = rng.gen_range(0.0..self.total);
        self.cum
            .partition_point(|&c| c <= x)
            .min(self.cum.len() - 1)
    }
}

/// Co-purchase groups (8, of 2 to 4 products) and follow-ups (5 pairs), among products of
/// middling popularity so that they stand out; no product is in two.
fn groups(
    rng: &mut Xoshiro256PlusPlus,
    n_products: usize,
) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
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
    (bundles, follow_ups)
}

/// Customers: their group, sign-up day, lapse day (lapsing customers) and country.
fn customers(rng: &mut Xoshiro256PlusPlus, cal: &Calendar, n: u64) -> Vec<Customer> {
    let mut customers = Vec::with_capacity(n as usize);
    for i in 0..n {
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
            Group::OneTime => cal.day(rng, 0, DAYS - 30),
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
    customers
}

/// Campaigns: one a month, 24 in all, sent on the campaign's day to about 12 % of the
/// customers signed up by then; a random 20 % of them are the control arm (held out), except
/// in the June campaigns, which have none.
pub(super) const CAMPAIGNS: i64 = 24;
pub(super) const CONTACT_SHARE: f64 = 0.12;
pub(super) const CONTROL_SHARE: f64 = 0.2;
/// Days after a contact in which the campaign's effect is planted (and measured).
pub(super) const RESPONSE_WINDOW_DAYS: i64 = 14;
/// A persuadable customer's chance of an extra purchase in the window after a treatment
/// contact.
pub(super) const PERSUADE: f64 = 0.3;
/// A sleeping dog's chance of dropping each purchase in the window after a treatment contact.
pub(super) const SLEEPING_DOG_SKIP: f64 = 0.7;

/// How a group answers a campaign (planted; `synth.json` records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Uplift {
    /// Buys more when contacted: loyal customers, who answer an offer with an extra order.
    Persuadable,
    /// Buys as much either way: one-time buyers and wholesale customers.
    Indifferent,
    /// Buys less when contacted: customers on their way out, reminded to leave.
    SleepingDog,
}

pub(super) fn uplift_of(g: Group) -> Uplift {
    match g {
        Group::Loyal => Uplift::Persuadable,
        Group::OneTime | Group::Wholesale => Uplift::Indifferent,
        Group::Lapsing => Uplift::SleepingDog,
    }
}

/// What `synth.json` records of the campaigns: the uplift planted per group and its sizes.
pub(super) fn planted_campaigns() -> serde_json::Value {
    let groups = [
        ("one_time", Group::OneTime),
        ("loyal", Group::Loyal),
        ("wholesale", Group::Wholesale),
        ("lapsing", Group::Lapsing),
    ];
    let by_group: std::collections::BTreeMap<&str, Uplift> = groups
        .iter()
        .map(|(name, g)| (*name, uplift_of(*g)))
        .collect();
    serde_json::json!({
        "uplift_by_group": by_group,
        "response_window_days": RESPONSE_WINDOW_DAYS,
        "control_share": CONTROL_SHARE,
        "persuadable_extra_purchase_probability": PERSUADE,
        "sleeping_dog_skip_probability": SLEEPING_DOG_SKIP,
        "without_control": (0..CAMPAIGNS).filter(|m| !has_control(*m)).map(super::write::campaign_id).collect::<Vec<_>>(),
    })
}

/// The day of campaign `m` (day numbers from the start).
pub(super) fn campaign_day(m: i64) -> i64 {
    (m * 30 + 3).min(DAYS - 20)
}

/// Whether campaign `m` has a control arm (the June campaigns have none).
pub(super) fn has_control(m: i64) -> bool {
    m % 12 != 5
}

/// The campaign contacts, by campaign, then customer.
fn contacts(rng: &mut Xoshiro256PlusPlus, customers: &[Customer]) -> Vec<Contact> {
    let mut out = Vec::new();
    for m in 0..CAMPAIGNS {
        let day = campaign_day(m);
        for (i, c) in customers.iter().enumerate() {
            if c.signup > day || !rng.gen_bool(CONTACT_SHARE) {
                continue;
            }
            out.push(Contact {
                campaign: m,
                customer: i as u32,
                day,
                treated: !has_control(m) || !rng.gen_bool(CONTROL_SHARE),
                phone: rng.gen_bool(0.2),
            });
        }
    }
    out
}

/// The planted campaign effect on one customer's purchase days: after each treatment
/// contact, a persuadable customer may buy once more within the window; a sleeping dog
/// drops purchases in it. Control contacts change nothing.
fn apply_uplift(rng: &mut Xoshiro256PlusPlus, g: Group, days: &mut Vec<i64>, treated: &[i64]) {
    match uplift_of(g) {
        Uplift::Indifferent => {}
        Uplift::Persuadable => {
            for &d in treated {
                if rng.gen_bool(PERSUADE) {
                    let day = d + rng.gen_range(1..=RESPONSE_WINDOW_DAYS);
                    if day < DAYS {
                        days.push(day);
                    }
                }
            }
        }
        Uplift::SleepingDog => days.retain(|&x| {
            let in_window = treated
                .iter()
                .any(|&d| x > d && x <= d + RESPONSE_WINDOW_DAYS);
            !(in_window && rng.gen_bool(SLEEPING_DOG_SKIP))
        }),
    }
}

/// Mean order lines per invoice of a group.
pub(super) fn lines_per(g: Group) -> f64 {
    match g {
        Group::OneTime => 3.0,
        Group::Loyal => 5.0,
        Group::Wholesale => 18.0,
        Group::Lapsing => 4.0,
    }
}

/// Invoices per customer of a group, before scaling to the target line count.
fn base_invoices(g: Group) -> f64 {
    match g {
        // One purchase and, for some, returns. (This weight only scales the other groups'
        // invoices to the target.)
        Group::OneTime => 1.4,
        Group::Loyal => 10.0,
        Group::Wholesale => 14.0,
        Group::Lapsing => 5.0,
    }
}

/// Every invoice, in time order: each customer's, counts per group scaled so the lines come
/// out near the target, then the guests'.
fn invoices(
    rng: &mut Xoshiro256PlusPlus,
    cal: &Calendar,
    customers: &[Customer],
    contacts: &[Contact],
    order_lines: u64,
) -> Vec<Invoice> {
    let mut treated: Vec<Vec<i64>> = vec![Vec::new(); customers.len()];
    for c in contacts.iter().filter(|c| c.treated) {
        treated[c.customer as usize].push(c.day);
    }
    let expected: f64 = customers
        .iter()
        .map(|c| lines_per(c.group) * base_invoices(c.group))
        .sum::<f64>()
        / (1.0 - GUEST_SHARE);
    let scale = (order_lines as f64 * 1.15 / expected).max(0.05);
    let mut invoices: Vec<Invoice> = Vec::new();
    for (ci, c) in customers.iter().enumerate() {
        let mut days = purchase_days(rng, cal, c, scale);
        apply_uplift(rng, c.group, &mut days, &treated[ci]);
        for day in days {
            let minute = day * 1440 + rng.gen_range(8 * 60..20 * 60);
            invoices.push(Invoice {
                minute,
                customer: Some(ci as u32),
            });
        }
    }
    let guests = (invoices.len() as f64 * GUEST_SHARE / (1.0 - GUEST_SHARE)) as usize;
    for _ in 0..guests {
        let day = cal.day(rng, 0, DAYS - 1);
        invoices.push(Invoice {
            minute: day * 1440 + rng.gen_range(8 * 60..20 * 60),
            customer: None,
        });
    }
    invoices.sort_by_key(|i| (i.minute, i.customer));
    invoices
}

/// The days a customer buys on.
fn purchase_days(
    rng: &mut Xoshiro256PlusPlus,
    cal: &Calendar,
    c: &Customer,
    scale: f64,
) -> Vec<i64> {
    match c.group {
        // A first-time buyer buys some time after signing up and may come back at any time,
        // rarely: gaps of two weeks plus an exponential with a long mean. Most never
        // return within the data, but none is certainly gone, unlike lapsing customers,
        // who buy often and then stop: the ones a churn model should rank first.
        Group::OneTime => {
            let mut day = cal.day(rng, c.signup, DAYS - 1);
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
            let n = poisson(rng, base_invoices(g) * scale).max(2);
            let until = c.lapse.unwrap_or(DAYS - 1);
            (0..n).map(|_| cal.day(rng, c.signup, until)).collect()
        }
    }
}
