//! Sessions and identity stitching, as SQL over `fact_web_event` (and `fact_sales` for the
//! invoices purchase events carry).
//!
//! - Order: a session's events in time, then by their `sequence` (a log that gives a click
//!   order but no time of day), then as they came (load, record).
//! - A log's own session ids are kept. Events without one are cut into sessions per visitor
//!   (else per customer): a gap of more than `idle_minutes` starts a new one, whose id is the
//!   visitor's id, `#` and its number (`v17#3`). An event with neither a session nor a
//!   visitor nor a customer is a session of its own (`record LOAD:RECORD`).
//! - Stitching (`dim_visitor`): a visitor is linked to the customer of the first event that
//!   names both (a login), or of the first purchase event whose invoice is a known order of
//!   a customer; the link holds for all their sessions, before and after. A session's
//!   customer is the one its own events name, else that of its invoices, else its visitor's.
//! - Revenue: the net revenue of the orders (`fact_sales`) whose invoices the session's
//!   events carry; for logs without orders, the prices of its purchase events.

use std::fmt::Write as _;

/// The order of events within a session, and within a visitor's stream.
pub const EVENT_ORDER: &str = "event_ts, sequence NULLS LAST, load_id, record";

/// Event types that show a page (counted as `pages`).
pub const PAGE_TYPES: [&str; 2] = ["page_view", "product_view"];

/// The common table expressions every web question starts from, over events before `cut`
/// (a SQL timestamp), as a list to follow `WITH`: `ev` (every event with `sid`, its session
/// id), `inv` (invoices with their customer and revenue), `links` and `visitors` (one row
/// per visitor, stitched).
pub fn ctes(cut: &str, idle_minutes: u32, has_sales: bool) -> String {
    let inv = if has_sales {
        format!(
            "SELECT arrow_cast(invoice_no, 'Utf8') AS invoice_no,
              arrow_cast(max(customer_id), 'Utf8') AS customer_id, sum(revenue) AS revenue
            FROM fact_sales WHERE invoice_ts < {cut} AND invoice_no IS NOT NULL
            GROUP BY invoice_no"
        )
    } else {
        "SELECT arrow_cast(NULL, 'Utf8') AS invoice_no, arrow_cast(NULL, 'Utf8') AS customer_id,
              CAST(NULL AS DECIMAL(18,3)) AS revenue WHERE false"
            .to_string()
    };
    let text = |c: &str| format!("arrow_cast({c}, 'Utf8') AS {c}");
    let raw_cols = [
        "event_type",
        "session_id",
        "visitor_id",
        "customer_id",
        "page",
        "product_id",
        "category",
        "referrer",
        "channel",
        "device",
        "country",
        "invoice_no",
    ]
    .map(text)
    .join(", ");
    let cols = "event_ts, event_type, visitor_id, customer_id, sequence, page, product_id, \
        category, price, referrer, channel, device, country, invoice_no, load_id, record";
    let mut s = String::new();
    let _ = write!(
        s,
        "raw AS (
  SELECT event_ts, {raw_cols}, sequence, price, load_id, record,
    arrow_cast(COALESCE(visitor_id, customer_id), 'Utf8') AS actor
  FROM fact_web_event WHERE event_ts < {cut}
),
idle_gaps AS (
  SELECT *, CASE WHEN event_ts > LAG(event_ts) OVER (PARTITION BY actor ORDER BY {EVENT_ORDER})
                   + INTERVAL '{idle_minutes} minutes'
              OR LAG(event_ts) OVER (PARTITION BY actor ORDER BY {EVENT_ORDER}) IS NULL
            THEN 1 ELSE 0 END AS fresh
  FROM raw WHERE session_id IS NULL AND actor IS NOT NULL
),
ev AS (
  SELECT {cols}, session_id AS sid FROM raw WHERE session_id IS NOT NULL
  UNION ALL
  SELECT {cols}, actor || '#' || CAST(SUM(fresh) OVER (PARTITION BY actor ORDER BY {EVENT_ORDER}
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS VARCHAR) AS sid
  FROM idle_gaps
  UNION ALL
  SELECT {cols}, 'record ' || CAST(load_id AS VARCHAR) || ':' || CAST(record AS VARCHAR) AS sid
  FROM raw WHERE session_id IS NULL AND actor IS NULL
),
inv AS ({inv}),
links AS (
  SELECT visitor_id, customer_id, event_ts FROM raw
  WHERE visitor_id IS NOT NULL AND customer_id IS NOT NULL
  UNION ALL
  SELECT r.visitor_id, i.customer_id, r.event_ts FROM raw r JOIN inv i ON i.invoice_no = r.invoice_no
  WHERE r.visitor_id IS NOT NULL AND i.customer_id IS NOT NULL
),
linked AS (
  SELECT visitor_id, FIRST_VALUE(customer_id ORDER BY event_ts, customer_id) AS customer_id,
    MIN(event_ts) AS linked_at, COUNT(DISTINCT customer_id) AS customers_linked
  FROM links GROUP BY visitor_id
),
visitors AS (
  SELECT r.visitor_id, l.customer_id, l.linked_at, COALESCE(l.customers_linked, 0) AS customers_linked,
    MIN(r.event_ts) AS first_seen, MAX(r.event_ts) AS last_seen, COUNT(*) AS events
  FROM raw r LEFT JOIN linked l ON l.visitor_id = r.visitor_id
  WHERE r.visitor_id IS NOT NULL
  GROUP BY r.visitor_id, l.customer_id, l.linked_at, l.customers_linked
)"
    );
    s
}

/// More common table expressions, after [`ctes`]: `session_rows`, one row per session (the
/// columns of `web_sessions`).
pub fn session_rows() -> String {
    let pages = PAGE_TYPES.map(|t| format!("'{t}'")).join(", ");
    let first = |c: &str| format!("FIRST_VALUE({c} ORDER BY {EVENT_ORDER}) AS {c}");
    format!(
        ",
sess AS (
  SELECT sid, MAX(visitor_id) AS visitor_id, MAX(customer_id) AS own_customer,
    MIN(event_ts) AS start_ts, MAX(event_ts) AS end_ts, COUNT(*) AS events,
    SUM(CASE WHEN event_type IN ({pages}) THEN 1 ELSE 0 END) AS pages,
    FIRST_VALUE(COALESCE(page, product_id) ORDER BY {EVENT_ORDER}) AS entry_page,
    LAST_VALUE(COALESCE(page, product_id) ORDER BY {EVENT_ORDER}) AS exit_page,
    {}, {}, {}, {},
    BOOL_OR(event_type = 'add_to_cart') AS added_to_cart,
    BOOL_OR(event_type = 'purchase' OR invoice_no IS NOT NULL) AS purchased,
    SUM(CASE WHEN event_type = 'purchase' THEN price END) AS purchase_value
  FROM ev GROUP BY sid
),
sess_sales AS (
  SELECT si.sid, MAX(i.customer_id) AS customer_id, SUM(i.revenue) AS revenue,
    COUNT(*) AS orders
  FROM (SELECT DISTINCT sid, invoice_no FROM ev WHERE invoice_no IS NOT NULL) si
  JOIN inv i ON i.invoice_no = si.invoice_no
  GROUP BY si.sid
),
session_rows AS (
SELECT s.sid AS session_id, s.visitor_id,
  COALESCE(s.own_customer, ss.customer_id, v.customer_id) AS customer_id,
  s.start_ts AS start, s.end_ts AS \"end\",
  CAST(date_part('year', s.start_ts) * 10000 + date_part('month', s.start_ts) * 100
    + date_part('day', s.start_ts) AS INT) AS date_key,
  CAST(date_part('epoch', s.end_ts) - date_part('epoch', s.start_ts) AS BIGINT) AS duration_s,
  s.events, s.pages, s.entry_page, s.exit_page, s.channel, s.device, s.referrer, s.country,
  s.added_to_cart, s.purchased OR ss.orders IS NOT NULL AS converted,
  COALESCE(ss.orders, 0) AS orders,
  CAST(COALESCE(ss.revenue, s.purchase_value, 0) AS DECIMAL(18,3)) AS revenue
FROM sess s
LEFT JOIN sess_sales ss ON ss.sid = s.sid
LEFT JOIN visitors v ON v.visitor_id = s.visitor_id
)",
        first("channel"),
        first("device"),
        first("referrer"),
        first("country"),
    )
}

/// One row per visitor (the columns of `dim_visitor`), after [`ctes`].
pub fn visitors_select() -> String {
    // A visitor's sessions: the log's own session ids it appears in, and the sessions cut
    // from its events without one (as many as the events that start one). The same count
    // as the distinct `sid`s of its events in `ev`, without numbering them again.
    ",
per_visitor AS (
  SELECT visitor_id, SUM(n) AS sessions FROM (
    SELECT visitor_id, COUNT(DISTINCT session_id) AS n FROM raw
    WHERE session_id IS NOT NULL AND visitor_id IS NOT NULL GROUP BY visitor_id
    UNION ALL
    SELECT visitor_id, SUM(fresh) AS n FROM idle_gaps WHERE visitor_id IS NOT NULL
    GROUP BY visitor_id
  ) GROUP BY visitor_id
)
SELECT v.visitor_id, v.customer_id, v.linked_at, v.customers_linked, v.first_seen, v.last_seen,
  v.events, p.sessions
FROM visitors v JOIN per_visitor p ON p.visitor_id = v.visitor_id
ORDER BY v.visitor_id"
        .to_string()
}
