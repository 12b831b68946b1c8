-- Power BI views over the three totesys stars (sales, purchases, payments; schema totesys, migrations
-- 0200 and 0210), in schema powerbi beside the invoice views of 0110 and typed the same way: money as
-- fixed decimals (numeric(19, 4)), ids and counts as whole numbers, dates as dates, flags as Yes/No.
-- Every name starts with "Totesys" so the two models never clash. Facts keep one row per source row
-- version: "Is Latest Version" picks the current one (the version with the latest last update), which
-- is what most measures want. Relationships: docs/powerbi.md.
CREATE SCHEMA IF NOT EXISTS powerbi;

CREATE OR REPLACE VIEW powerbi."Totesys Sales Orders" AS
SELECT
  f.sales_record_id AS "Sales Record ID",
  f.sales_order_id AS "Sales Order ID",
  f.created_date AS "Created Date",
  f.created_time AS "Created Time",
  f.last_updated_date AS "Last Updated Date",
  f.last_updated_time AS "Last Updated Time",
  f.sales_staff_id AS "Sales Staff ID",
  f.counterparty_id AS "Counterparty ID",
  f.units_sold AS "Units Sold",
  CAST(f.unit_price AS numeric(19, 4)) AS "Unit Price",
  CAST(f.units_sold * f.unit_price AS numeric(19, 4)) AS "Order Value",
  f.currency_id AS "Currency ID",
  f.design_id AS "Design ID",
  f.agreed_payment_date AS "Agreed Payment Date",
  f.agreed_delivery_date AS "Agreed Delivery Date",
  f.agreed_delivery_location_id AS "Agreed Delivery Location ID",
  CAST(
    CASE
      WHEN ROW_NUMBER() OVER (
        PARTITION BY f.sales_order_id
        ORDER BY f.last_updated_date DESC, f.last_updated_time DESC
      ) = 1 THEN 'Yes'
      ELSE 'No'
    END AS varchar(3)
  ) AS "Is Latest Version"
FROM totesys.fact_sales_order f;

CREATE OR REPLACE VIEW powerbi."Totesys Purchase Orders" AS
SELECT
  f.purchase_record_id AS "Purchase Record ID",
  f.purchase_order_id AS "Purchase Order ID",
  f.created_date AS "Created Date",
  f.created_time AS "Created Time",
  f.last_updated_date AS "Last Updated Date",
  f.last_updated_time AS "Last Updated Time",
  f.staff_id AS "Staff ID",
  f.counterparty_id AS "Counterparty ID",
  f.item_code AS "Item Code",
  f.item_quantity AS "Item Quantity",
  CAST(f.item_unit_price AS numeric(19, 4)) AS "Item Unit Price",
  CAST(f.item_quantity * f.item_unit_price AS numeric(19, 4)) AS "Order Value",
  f.currency_id AS "Currency ID",
  f.agreed_delivery_date AS "Agreed Delivery Date",
  f.agreed_payment_date AS "Agreed Payment Date",
  f.agreed_delivery_location_id AS "Agreed Delivery Location ID",
  CAST(
    CASE
      WHEN ROW_NUMBER() OVER (
        PARTITION BY f.purchase_order_id
        ORDER BY f.last_updated_date DESC, f.last_updated_time DESC
      ) = 1 THEN 'Yes'
      ELSE 'No'
    END AS varchar(3)
  ) AS "Is Latest Version"
FROM totesys.fact_purchase_orders f;

CREATE OR REPLACE VIEW powerbi."Totesys Payments" AS
SELECT
  f.payment_record_id AS "Payment Record ID",
  f.payment_id AS "Payment ID",
  f.created_date AS "Created Date",
  f.created_time AS "Created Time",
  f.last_updated_date AS "Last Updated Date",
  f.last_updated_time AS "Last Updated Time",
  f.transaction_id AS "Transaction ID",
  f.counterparty_id AS "Counterparty ID",
  CAST(f.payment_amount AS numeric(19, 4)) AS "Payment Amount",
  f.currency_id AS "Currency ID",
  f.payment_type_id AS "Payment Type ID",
  CAST(CASE WHEN f.paid THEN 'Yes' ELSE 'No' END AS varchar(3)) AS "Is Paid",
  f.payment_date AS "Payment Date",
  CAST(
    CASE
      WHEN ROW_NUMBER() OVER (
        PARTITION BY f.payment_id
        ORDER BY f.last_updated_date DESC, f.last_updated_time DESC
      ) = 1 THEN 'Yes'
      ELSE 'No'
    END AS varchar(3)
  ) AS "Is Latest Version"
FROM totesys.fact_payment f;

CREATE OR REPLACE VIEW powerbi."Totesys Date" AS
SELECT
  date_id AS "Date",
  year AS "Year",
  quarter AS "Quarter Number",
  'Q' || CAST(quarter AS varchar(1)) AS "Quarter",
  month AS "Month Number",
  month_name AS "Month",
  day AS "Day",
  day_of_week AS "Weekday Number",
  day_name AS "Weekday"
FROM totesys.dim_date;

CREATE OR REPLACE VIEW powerbi."Totesys Staff" AS
SELECT
  staff_id AS "Staff ID",
  first_name AS "First Name",
  last_name AS "Last Name",
  first_name || ' ' || last_name AS "Staff Name",
  department_name AS "Department",
  location AS "Department Location",
  email_address AS "Email Address"
FROM totesys.dim_staff;

CREATE OR REPLACE VIEW powerbi."Totesys Counterparty" AS
SELECT
  counterparty_id AS "Counterparty ID",
  counterparty_legal_name AS "Counterparty",
  counterparty_legal_address_line_1 AS "Address Line 1",
  counterparty_legal_address_line_2 AS "Address Line 2",
  counterparty_legal_district AS "District",
  counterparty_legal_city AS "City",
  counterparty_legal_postal_code AS "Postal Code",
  counterparty_legal_country AS "Country",
  counterparty_legal_phone_number AS "Phone Number"
FROM totesys.dim_counterparty;

CREATE OR REPLACE VIEW powerbi."Totesys Location" AS
SELECT
  location_id AS "Location ID",
  address_line_1 AS "Address Line 1",
  address_line_2 AS "Address Line 2",
  district AS "District",
  city AS "City",
  postal_code AS "Postal Code",
  country AS "Country",
  phone AS "Phone"
FROM totesys.dim_location;

CREATE OR REPLACE VIEW powerbi."Totesys Currency" AS
SELECT
  currency_id AS "Currency ID",
  currency_code AS "Currency Code",
  currency_name AS "Currency"
FROM totesys.dim_currency;

CREATE OR REPLACE VIEW powerbi."Totesys Design" AS
SELECT
  design_id AS "Design ID",
  design_name AS "Design",
  file_location AS "File Location",
  file_name AS "File Name"
FROM totesys.dim_design;

CREATE OR REPLACE VIEW powerbi."Totesys Payment Type" AS
SELECT
  payment_type_id AS "Payment Type ID",
  payment_type_name AS "Payment Type"
FROM totesys.dim_payment_type;

CREATE OR REPLACE VIEW powerbi."Totesys Transaction" AS
SELECT
  transaction_id AS "Transaction ID",
  transaction_type AS "Transaction Type",
  sales_order_id AS "Sales Order ID",
  purchase_order_id AS "Purchase Order ID"
FROM totesys.dim_transaction;
