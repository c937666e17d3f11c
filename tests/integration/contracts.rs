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
    ];
    for (name, text) in cases {
        insta::assert_snapshot!(format!("contract_{name}"), error_of(&text));
    }
}
