//! dim_customer keeps history: a change of country or opt-in opens a new version (SCD type 2);
//! other attributes are corrected in place (type 1); keys never move.

use crate::support::{ecrm_ok, sql};

const CONTRACT: &str = r#"
[sources.customers]
entity = "customer"
path = "customers"
dedupe_key = ["customer_id"]
[sources.customers.columns]
customer_id = { from = "id" }
email = { from = "email" }
country = { from = "country" }
email_opt_in = { from = "email_ok", true_values = ["Y"], false_values = ["N"] }

[sources.orders]
entity = "order_line"
path = "orders"
[sources.orders.columns]
invoice_no = { from = "invoice" }
invoice_ts = { from = "at", formats = ["%Y-%m-%d %H:%M"] }
customer_id = { from = "customer" }
product_id = { from = "sku" }
quantity = { from = "qty" }
unit_price = { from = "price" }
"#;

fn rows(v: Vec<Vec<&str>>) -> Vec<Vec<String>> {
    v.into_iter()
        .map(|r| r.into_iter().map(String::from).collect())
        .collect()
}

#[test]
fn customer_changes_open_versions_and_facts_follow_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("contract.toml"), CONTRACT).unwrap();
    for d in ["customers", "orders"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("customers/day1.csv"),
        "id,email,country,email_ok\nA,a@x.org,France,Y\nB,b@x.org,Spain,N\nC,c@x.org,Italy,Y\n",
    )
    .unwrap();
    std::fs::write(
        root.join("orders/day1.csv"),
        "invoice,at,customer,sku,qty,price\n1,2024-01-01 10:00,A,P1,1,1.00\n",
    )
    .unwrap();
    let wh = root.join("wh");
    let contract = root.join("contract.toml");
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);

    // Day 2: A moves (type 2), B fixes its e-mail (type 1), C opts out (type 2), D is new.
    std::fs::write(
        root.join("customers/day2.csv"),
        "id,email,country,email_ok\nA,a@x.org,Germany,Y\nB,b2@x.org,Spain,N\nC,c@x.org,Italy,N\nD,d@x.org,Peru,Y\n",
    )
    .unwrap();
    std::fs::write(
        root.join("orders/day2.csv"),
        "invoice,at,customer,sku,qty,price\n2,2024-01-02 10:00,A,P1,2,1.00\n",
    )
    .unwrap();
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);

    assert_eq!(
        sql(
            &wh,
            "SELECT customer_key, customer_id, email, country, email_opt_in, is_current, valid_to IS NULL, load_id \
             FROM dim_customer WHERE customer_key > 0 ORDER BY customer_key"
        ),
        rows(vec![
            vec!["1", "A", "a@x.org", "France", "true", "false", "false", "1"],
            vec!["2", "B", "b2@x.org", "Spain", "false", "true", "true", "2"],
            vec!["3", "C", "c@x.org", "Italy", "true", "false", "false", "1"],
            vec!["4", "A", "a@x.org", "Germany", "true", "true", "true", "2"],
            vec!["5", "C", "c@x.org", "Italy", "false", "true", "true", "2"],
            vec!["6", "D", "d@x.org", "Peru", "true", "true", "true", "2"],
        ])
    );
    // A closed version ends when its successor starts.
    assert_eq!(
        sql(
            &wh,
            "SELECT COUNT(*) FROM dim_customer o JOIN dim_customer n ON o.customer_id = n.customer_id \
             AND NOT o.is_current AND n.is_current WHERE o.valid_to <> n.valid_from"
        ),
        rows(vec![vec!["0"]])
    );
    // Each sale points at the version current when it was loaded.
    assert_eq!(
        sql(
            &wh,
            "SELECT invoice_no, customer_key FROM fact_sales ORDER BY invoice_no"
        ),
        rows(vec![vec!["1", "1"], vec!["2", "4"]])
    );
}
