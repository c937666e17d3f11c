-- Revenue by month and country, returns netted: the report's revenue chart and a table
-- analysts can join to. Order lines before the run's as-of date only (the pipeline's point
-- in time).
SELECT
  date_trunc('month', invoice_ts) AS month,
  country,
  count(DISTINCT invoice_no) FILTER (WHERE NOT is_return) AS invoices,
  count(DISTINCT customer_id) AS customers,
  CAST(coalesce(sum(revenue) FILTER (WHERE NOT is_return), 0) AS DOUBLE) AS gross_revenue,
  CAST(-coalesce(sum(revenue) FILTER (WHERE is_return), 0) AS DOUBLE) AS returned_revenue,
  CAST(sum(revenue) AS DOUBLE) AS net_revenue
FROM fact_sales
GROUP BY 1, 2
ORDER BY 1, 2
