//! Contracts with each kind of mistake give the promised message: the file, the key and what
//! is allowed (insta snapshots).

use std::path::Path;

use ecrm::ingest::contract::Contract;

const GOOD: &str = r#"
[sources.tx]
entity = "order_line"
path = "tx.csv"
[sources.tx.columns]
invoice_no = { from = "InvoiceNo" }
invoice_ts = { from = "InvoiceDate", formats = ["%Y-%m-%d %H:%M:%S"] }
product_id = { from = "StockCode" }
quantity = { from = "Quantity" }
unit_price = { from = "UnitPrice" }
"#;

fn error_of(text: &str) -> String {
    match Contract::parse(Path::new("pipelines/bad.toml"), text) {
        Ok(_) => panic!("the contract was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// GOOD with `from` replaced by `to` (which must change it).
fn edited(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

/// A fixed-width order-line contract (widths of three columns) ending in `rest`: its
/// quantity and unit price columns, one of them mistaken.
fn fixed(rest: &str) -> String {
    format!(
        r#"
[sources.f]
entity = "order_line"
path = "f.txt"
format = "fixed"
widths = [5, 8, 3]
[sources.f.columns]
invoice_no = {{ from = 1 }}
invoice_ts = {{ from = 2, formats = ["%Y%m%d"] }}
product_id = {{ value = "X" }}
{rest}
"#
    )
}

#[test]
fn the_good_contract_is_accepted() {
    let c = Contract::parse(Path::new("pipelines/good.toml"), GOOD).unwrap();
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.sources[0].path, Path::new("pipelines/tx.csv"));
}

#[test]
fn contract_mistakes_are_named() {
    let cases: Vec<(&str, String)> = vec![
        (
            "toml_syntax",
            edited("entity = \"order_line\"", "entity = order_line"),
        ),
        ("unknown_top_level_key", format!("sourcez = 1\n{GOOD}")),
        (
            "unknown_source_key",
            edited("path = \"tx.csv\"", "path = \"tx.csv\"\ndelimeter = \";\""),
        ),
        ("unknown_entity", edited("\"order_line\"", "\"orders\"")),
        ("unknown_column", edited("quantity = ", "qty = ")),
        (
            "missing_required_column",
            edited("unit_price = { from = \"UnitPrice\" }", ""),
        ),
        (
            "timestamp_without_formats",
            edited(", formats = [\"%Y-%m-%d %H:%M:%S\"]", ""),
        ),
        ("bad_date_format", edited("%H:%M:%S", "%H:%Q")),
        (
            "formats_on_a_number",
            edited(
                "{ from = \"Quantity\" }",
                "{ from = \"Quantity\", formats = [\"%Y\"] }",
            ),
        ),
        (
            "case_on_a_number",
            edited(
                "{ from = \"Quantity\" }",
                "{ from = \"Quantity\", case = \"upper\" }",
            ),
        ),
        (
            "bad_case_value",
            edited(
                "{ from = \"StockCode\" }",
                "{ from = \"StockCode\", case = \"title\" }",
            ),
        ),
        (
            "delimiter_too_long",
            edited("path = \"tx.csv\"", "path = \"tx.csv\"\ndelimiter = \";;\""),
        ),
        (
            "bad_encoding",
            edited(
                "path = \"tx.csv\"",
                "path = \"tx.csv\"\nencoding = \"utf-16\"",
            ),
        ),
        (
            "bad_format",
            edited("path = \"tx.csv\"", "path = \"tx.csv\"\nformat = \"xlsx\""),
        ),
        (
            "rule_on_unmapped_column",
            format!("{GOOD}[sources.tx.rules]\nnot_null = [\"customer_id\"]\n"),
        ),
        (
            "range_on_text",
            format!("{GOOD}[sources.tx.rules]\nrange = {{ invoice_no = {{ min = 0 }} }}\n"),
        ),
        (
            "range_min_above_max",
            format!("{GOOD}[sources.tx.rules]\nrange = {{ quantity = {{ min = 5, max = 1 }} }}\n"),
        ),
        (
            "bad_pattern",
            format!("{GOOD}[sources.tx.rules]\npattern = {{ invoice_no = \"^[0-9\" }}\n"),
        ),
        (
            "empty_accepted_values",
            format!("{GOOD}[sources.tx.rules]\naccepted_values = {{ invoice_no = [] }}\n"),
        ),
        (
            "unset_environment_variable",
            edited("\"tx.csv\"", "\"${ECRM_TEST_UNSET_VARIABLE}/tx.csv\""),
        ),
        (
            "no_sources",
            "description = \"nothing\"\n[sources]\n".to_string(),
        ),
        (
            "cancellation_prefix_on_customers",
            r#"
[sources.c]
entity = "customer"
path = "c.csv"
cancellation_prefix = "C"
[sources.c.columns]
customer_id = { from = "id" }
"#
            .to_string(),
        ),
        (
            "line_total_and_unit_price",
            edited(
                "unit_price = { from = \"UnitPrice\" }",
                "unit_price = { from = \"UnitPrice\" }\nline_total = { from = \"Total\" }",
            ),
        ),
        (
            "line_cost_and_unit_cost",
            edited(
                "unit_price = { from = \"UnitPrice\" }",
                "unit_price = { from = \"UnitPrice\" }\nline_cost = { from = \"C\" }\nunit_cost = { from = \"U\" }",
            ),
        ),
        (
            "basket_with_invoice_numbers",
            edited(
                "path = \"tx.csv\"",
                "path = \"tx.csv\"\nbasket = \"customer_day\"",
            ),
        ),
        (
            "basket_on_customers",
            r#"
[sources.c]
entity = "customer"
path = "c.csv"
basket = "customer_day"
[sources.c.columns]
customer_id = { from = "id" }
"#
            .to_string(),
        ),
        (
            "no_invoice_numbers_and_no_basket",
            edited("invoice_no = { from = \"InvoiceNo\" }", ""),
        ),
        (
            "from_and_value",
            edited(
                "{ from = \"StockCode\" }",
                "{ from = \"StockCode\", value = \"X\" }",
            ),
        ),
        (
            "value_of_the_wrong_type",
            edited("{ from = \"Quantity\" }", "{ value = \"many\" }"),
        ),
        (
            "neither_from_nor_value",
            edited("{ from = \"StockCode\" }", "{ case = \"upper\" }"),
        ),
        (
            "bad_from_type",
            edited("{ from = \"StockCode\" }", "{ from = true }"),
        ),
        (
            "position_zero",
            edited("{ from = \"StockCode\" }", "{ from = 0 }"),
        ),
        (
            "name_without_header",
            edited("path = \"tx.csv\"", "path = \"tx.csv\"\nheader = false"),
        ),
        (
            "join_with_one_column",
            edited(
                "{ from = \"StockCode\" }",
                "{ from = \"StockCode\", join = \"-\" }",
            ),
        ),
        (
            "quote_with_whitespace",
            edited(
                "path = \"tx.csv\"",
                "path = \"tx.csv\"\ndelimiter = \"whitespace\"\nquote = \"'\"",
            ),
        ),
        (
            "widths_on_csv",
            edited("path = \"tx.csv\"", "path = \"tx.csv\"\nwidths = [1, 2]"),
        ),
        (
            "span_on_csv",
            edited("{ from = \"StockCode\" }", "{ start = 1, width = 5 }"),
        ),
        (
            "position_past_the_last_fixed_column",
            fixed("quantity = { from = 4 }\nunit_price = { start = 17, width = 5 }"),
        ),
        (
            "overlapping_fixed_columns",
            fixed("quantity = { start = 10, width = 3 }\nunit_price = { start = 12, width = 6 }"),
        ),
        (
            "span_without_width",
            fixed("quantity = { from = 3 }\nunit_price = { start = 17 }"),
        ),
        (
            "position_in_ndjson",
            edited(
                "path = \"tx.csv\"",
                "path = \"tx.ndjson\"\nformat = \"ndjson\"",
            )
            .replace("{ from = \"StockCode\" }", "{ from = 2 }"),
        ),
        (
            "cancellation_prefix_with_basket",
            edited("invoice_no = { from = \"InvoiceNo\" }", "")
                .replace(
                    "path = \"tx.csv\"",
                    "path = \"tx.csv\"\nbasket = \"customer_day\"\ncancellation_prefix = \"C\"",
                )
                .replace(
                    "[sources.tx.columns]",
                    "[sources.tx.columns]\ncustomer_id = { from = \"C\" }",
                ),
        ),
    ];
    for (name, text) in cases {
        insta::assert_snapshot!(format!("contract_{name}"), error_of(&text));
    }
}
