-- The peer of `ecrm web sessions`: the same sessions and visitors from the warehouse's
-- Parquet files with DuckDB window functions (one DuckDB CLI process).
-- usage: duckdb -c "SET VARIABLE events='WH/tables/fact_web_event/**/*.parquet';
--                   SET VARIABLE sales='WH/tables/fact_sales/**/*.parquet'; SET VARIABLE out='DIR';" \
--               -c ".read benches/web_sessions_duckdb.sql"
-- Semantics as ecrm's (src/web/sessions.rs): a log's session ids are kept; other events are
-- cut per visitor (else customer) after more than 30 idle minutes; a visitor is linked to
-- the customer of its first login or purchase of a known order; a session's customer is its
-- own, else its orders', else its visitor's; revenue from the orders its purchases carry.
CREATE TEMP TABLE raw AS
  SELECT *, COALESCE(visitor_id, customer_id) AS actor FROM read_parquet(getvariable('events'));
CREATE TEMP TABLE inv AS
  SELECT invoice_no, max(customer_id) AS customer_id, sum(revenue) AS revenue
  FROM read_parquet(getvariable('sales')) WHERE invoice_no IS NOT NULL GROUP BY invoice_no;
CREATE TEMP TABLE ev AS
  WITH gaps AS (
    SELECT *, CASE WHEN lag(event_ts) OVER w IS NULL
                     OR event_ts > lag(event_ts) OVER w + INTERVAL 30 MINUTE THEN 1 ELSE 0 END AS fresh
    FROM raw WHERE session_id IS NULL AND actor IS NOT NULL
    WINDOW w AS (PARTITION BY actor ORDER BY event_ts, sequence NULLS LAST, load_id, record)
  )
  SELECT * EXCLUDE (fresh), actor || '#' || CAST(sum(fresh) OVER (PARTITION BY actor
      ORDER BY event_ts, sequence NULLS LAST, load_id, record ROWS UNBOUNDED PRECEDING) AS VARCHAR) AS sid
  FROM gaps
  UNION ALL BY NAME SELECT *, session_id AS sid FROM raw WHERE session_id IS NOT NULL
  UNION ALL BY NAME SELECT *, 'record ' || load_id || ':' || record AS sid FROM raw
    WHERE session_id IS NULL AND actor IS NULL;
CREATE TEMP TABLE visitors AS
  WITH links AS (
    SELECT visitor_id, customer_id, event_ts FROM raw WHERE visitor_id IS NOT NULL AND customer_id IS NOT NULL
    UNION ALL
    SELECT r.visitor_id, i.customer_id, r.event_ts FROM raw r JOIN inv i USING (invoice_no)
    WHERE r.visitor_id IS NOT NULL AND i.customer_id IS NOT NULL
  ), linked AS (
    SELECT visitor_id, arg_min(customer_id, (event_ts, customer_id)) AS customer_id,
      min(event_ts) AS linked_at, count(DISTINCT customer_id) AS customers_linked
    FROM links GROUP BY visitor_id
  )
  SELECT r.visitor_id, l.customer_id, l.linked_at, COALESCE(l.customers_linked, 0) AS customers_linked,
    min(r.event_ts) AS first_seen, max(r.event_ts) AS last_seen, count(*) AS events,
    count(DISTINCT e.sid) AS sessions
  FROM raw r LEFT JOIN linked l USING (visitor_id)
  JOIN (SELECT DISTINCT visitor_id, sid FROM ev) e USING (visitor_id)
  WHERE r.visitor_id IS NOT NULL
  GROUP BY ALL;
COPY (
  WITH sess AS (
    SELECT sid, max(visitor_id) AS visitor_id, max(customer_id) AS own_customer,
      min(event_ts) AS start_ts, max(event_ts) AS end_ts, count(*) AS events,
      sum(CASE WHEN event_type IN ('page_view', 'product_view') THEN 1 ELSE 0 END) AS pages,
      arg_min_null(COALESCE(page, product_id), (event_ts, sequence, load_id, record)) AS entry_page,
      arg_max_null(COALESCE(page, product_id), (event_ts, sequence, load_id, record)) AS exit_page,
      arg_min_null(channel, (event_ts, sequence, load_id, record)) AS channel,
      arg_min_null(device, (event_ts, sequence, load_id, record)) AS device,
      arg_min_null(referrer, (event_ts, sequence, load_id, record)) AS referrer,
      arg_min_null(country, (event_ts, sequence, load_id, record)) AS country,
      bool_or(event_type = 'purchase' OR invoice_no IS NOT NULL) AS purchased,
      sum(CASE WHEN event_type = 'purchase' THEN price END) AS purchase_value
    FROM ev GROUP BY sid
  ), sess_sales AS (
    SELECT si.sid, max(i.customer_id) AS customer_id, sum(i.revenue) AS revenue, count(*) AS orders
    FROM (SELECT DISTINCT sid, invoice_no FROM ev WHERE invoice_no IS NOT NULL) si
    JOIN inv i USING (invoice_no) GROUP BY si.sid
  )
  SELECT s.sid AS session_id, s.visitor_id,
    COALESCE(s.own_customer, ss.customer_id, v.customer_id) AS customer_id,
    s.start_ts AS start, s.end_ts AS "end",
    CAST(strftime(s.start_ts, '%Y%m%d') AS INT) AS date_key,
    CAST(epoch(s.end_ts) - epoch(s.start_ts) AS BIGINT) AS duration_s,
    s.events, s.pages, s.entry_page, s.exit_page, s.channel, s.device, s.referrer, s.country,
    s.purchased OR ss.orders IS NOT NULL AS converted, COALESCE(ss.orders, 0) AS orders,
    CAST(COALESCE(ss.revenue, s.purchase_value, 0) AS DECIMAL(18,3)) AS revenue
  FROM sess s LEFT JOIN sess_sales ss USING (sid) LEFT JOIN visitors v USING (visitor_id)
  ORDER BY start, session_id
) TO (getvariable('out') || '/web_sessions.parquet') (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM visitors ORDER BY visitor_id)
  TO (getvariable('out') || '/dim_visitor.parquet') (FORMAT parquet, COMPRESSION zstd);
