-- RFM segmentation over customers who bought at least once. Recency is counted in whole days
-- back from the last invoice date in the warehouse (the data set is historical, so "today" would
-- make every customer lost). Scores are quintiles, 5 = best; ties broken by customer_id so the
-- scores are deterministic.
CREATE OR REPLACE VIEW v_customer_rfm AS
WITH customer AS (
  SELECT
    customer_id,
    MAX(last_purchase_at) AS last_purchase_at,
    SUM(purchases) AS frequency,
    SUM(revenue) AS monetary
  FROM mart_customer_month
  GROUP BY customer_id
  HAVING SUM(purchases) > 0
),
as_of AS (
  SELECT MAX(last_purchase_at) AS as_of_at FROM mart_customer_month
),
scored AS (
  SELECT
    c.customer_id,
    c.last_purchase_at,
    CAST(FLOOR((EXTRACT(EPOCH FROM a.as_of_at) - EXTRACT(EPOCH FROM c.last_purchase_at)) / 86400) AS integer)
      AS recency_days,
    CAST(c.frequency AS integer) AS frequency,
    c.monetary,
    NTILE(5) OVER (ORDER BY c.last_purchase_at, c.customer_id) AS r_score,
    NTILE(5) OVER (ORDER BY c.frequency, c.customer_id) AS f_score,
    NTILE(5) OVER (ORDER BY c.monetary, c.customer_id) AS m_score
  FROM customer c
  CROSS JOIN as_of a
)
SELECT
  customer_id,
  last_purchase_at,
  recency_days,
  frequency,
  monetary,
  r_score,
  f_score,
  m_score,
  CAST(r_score AS varchar(1)) || CAST(f_score AS varchar(1)) || CAST(m_score AS varchar(1)) AS rfm_cell,
  CAST(
    CASE
      WHEN r_score >= 4 AND f_score >= 4 THEN 'Champions'
      WHEN r_score >= 3 AND f_score >= 3 THEN 'Loyal'
      WHEN r_score >= 4 AND f_score <= 1 THEN 'New'
      WHEN r_score >= 3 THEN 'Promising'
      WHEN r_score <= 2 AND f_score >= 4 THEN 'Cannot lose'
      WHEN r_score = 2 AND f_score >= 2 THEN 'At risk'
      WHEN r_score = 2 THEN 'Hibernating'
      ELSE 'Lost'
    END AS varchar(16)
  ) AS segment
FROM scored;
