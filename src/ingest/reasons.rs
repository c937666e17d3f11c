//! Reject reason codes: the one documented list.
//!
//! Each rejected row in the `rejects` table carries one of these stable snake_case codes and a
//! detail naming the column and value. A row breaking several rules gets the first in this
//! order (the order rows are checked in).
//!
//! | code | meaning |
//! |---|---|
//! | `ragged_line` | the record has a different number of fields than the header |
//! | `bad_encoding` | a field is not valid in the source's declared encoding |
//! | `malformed_record` | an NDJSON line that is not a JSON object |
//! | `missing_value` | a `not_null` column is empty or a null token |
//! | `bad_number` | an integer or money column does not parse, or money has more than 3 decimals |
//! | `bad_date` | a date or timestamp matches none of the contract's formats |
//! | `bad_boolean` | a boolean column holds a value that is in neither true_values nor false_values |
//! | `out_of_range` | a `range` rule is broken |
//! | `not_accepted` | an `accepted_values` rule is broken |
//! | `pattern_mismatch` | a `pattern` rule is broken |
//! | `zero_quantity` | an order line with quantity 0 |
//! | `stock_adjustment` | a negative quantity outside a cancellation invoice (contract: `negative_quantity = "reject"`) |
//! | `unknown_product` | an order line's product is in no product source nor in dim_product |
//! | `unknown_customer` | a customer id that is in no customer source nor in dim_customer |
//! | `unknown_campaign` | a contact's campaign is in no campaign source nor in dim_campaign (checked when the contract has a campaign source) |
//! | `duplicate_key` | a later row with the same `dedupe_key` as an earlier row of the load |

/// A reject reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    RaggedLine,
    BadEncoding,
    MalformedRecord,
    MissingValue,
    BadNumber,
    BadDate,
    BadBoolean,
    OutOfRange,
    NotAccepted,
    PatternMismatch,
    ZeroQuantity,
    StockAdjustment,
    UnknownProduct,
    UnknownCustomer,
    UnknownCampaign,
    DuplicateKey,
}

impl Reason {
    /// Every code, in checking order.
    pub const ALL: [Reason; 16] = [
        Reason::RaggedLine,
        Reason::BadEncoding,
        Reason::MalformedRecord,
        Reason::MissingValue,
        Reason::BadNumber,
        Reason::BadDate,
        Reason::BadBoolean,
        Reason::OutOfRange,
        Reason::NotAccepted,
        Reason::PatternMismatch,
        Reason::ZeroQuantity,
        Reason::StockAdjustment,
        Reason::UnknownProduct,
        Reason::UnknownCustomer,
        Reason::UnknownCampaign,
        Reason::DuplicateKey,
    ];

    /// The stable code written to `rejects.reason`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::RaggedLine => "ragged_line",
            Reason::BadEncoding => "bad_encoding",
            Reason::MalformedRecord => "malformed_record",
            Reason::MissingValue => "missing_value",
            Reason::BadNumber => "bad_number",
            Reason::BadDate => "bad_date",
            Reason::BadBoolean => "bad_boolean",
            Reason::OutOfRange => "out_of_range",
            Reason::NotAccepted => "not_accepted",
            Reason::PatternMismatch => "pattern_mismatch",
            Reason::ZeroQuantity => "zero_quantity",
            Reason::StockAdjustment => "stock_adjustment",
            Reason::UnknownProduct => "unknown_product",
            Reason::UnknownCustomer => "unknown_customer",
            Reason::UnknownCampaign => "unknown_campaign",
            Reason::DuplicateKey => "duplicate_key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_documented() {
        let doc = include_str!("reasons.rs");
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let c = r.code();
            assert!(seen.insert(c), "duplicate code {c}");
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{c}"
            );
            assert!(
                doc.contains(&format!("//! | `{c}` |")),
                "{c} is missing from the table"
            );
        }
    }
}
