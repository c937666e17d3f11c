//! RFM: quintile scores for recency, frequency and monetary value, and the named segments
//! marketers know.
//!
//! Scores (1 worst … 5 best) are fifths of the customer population, computed in integer
//! arithmetic from how many customers are strictly worse:
//!
//! ```text
//! score = 1 + floor(5 × worse / n)
//! ```
//!
//! where `n` is the number of customers in the mart and `worse` counts customers with a
//! strictly longer recency (R), strictly fewer invoices (F) or strictly less net revenue (M).
//! The tie rule follows from it: equal values always get equal scores, and no score depends on
//! row order or customer ids. A value shared by many customers (a frequency of 1 is shared by
//! a third of Online Retail's customers) keeps them all in one score, so scores need not be
//! equally full.
//!
//! Named segments come from the R × F grid of the widely used "seg_map" variant of RFM
//! segmentation (Putler's RFM segments, as copied in most RFM tutorials), with one change: its
//! Hibernating block loses the cell R1 F1, which is named **Lost** (bought once, long ago), so
//! all eleven names of the common list appear. M is scored and kept beside them but does not
//! change the name, as in that variant.
//!
//! ```text
//!        F=1            F=2                 F=3                 F=4          F=5
//! R=5    New            Potential loyalist  Potential loyalist  Champions    Champions
//! R=4    Promising      Potential loyalist  Potential loyalist  Loyal        Loyal
//! R=3    About to sleep About to sleep      Need attention      Loyal        Loyal
//! R=2    Hibernating    Hibernating         At risk             At risk      Can't lose them
//! R=1    Lost           Hibernating         At risk             At risk      Can't lose them
//! ```

/// The named segments; a segment's id is its position in this list plus one.
pub const SEGMENTS: [&str; 11] = [
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
];

/// The segment name for recency and frequency scores (each 1..=5), as in the grid above.
pub fn segment(r: u8, f: u8) -> &'static str {
    match (r, f) {
        (5, 1) => "New",
        (4, 1) => "Promising",
        (4..=5, 2..=3) => "Potential loyalist",
        (5, 4..=5) => "Champions",
        (3..=4, 4..=5) => "Loyal",
        (3, 1..=2) => "About to sleep",
        (3, 3) => "Need attention",
        (1, 1) => "Lost",
        (1..=2, 1..=2) => "Hibernating",
        (1..=2, 3..=4) => "At risk",
        (1..=2, 5) => "Can't lose them",
        _ => panic!("RFM scores are 1..=5, got R={r} F={f}"),
    }
}

/// The segment id (1-based position in [`SEGMENTS`]) of a segment name.
pub fn segment_id(name: &str) -> i64 {
    SEGMENTS
        .iter()
        .position(|s| *s == name)
        .map_or(0, |i| i as i64 + 1)
}

/// SQL select-list items that score a relation with columns `recency_days`, `frequency` and
/// `monetary`: `r_score`, `f_score` and `m_score`, by the formula in the module doc.
pub fn score_sql() -> String {
    // RANK() - 1 over an ordering from worst to best counts the strictly worse customers.
    let score = |order: &str| {
        format!("CAST(1 + (5 * (RANK() OVER (ORDER BY {order}) - 1)) / COUNT(*) OVER () AS INT)")
    };
    format!(
        "{} AS r_score, {} AS f_score, {} AS m_score",
        score("recency_days DESC"),
        score("frequency"),
        score("monetary"),
    )
}

/// The `CASE` expression naming the segment from columns `r_score` and `f_score` (the grid in
/// the module doc, from [`segment`]).
pub fn segment_case_sql() -> String {
    let mut case = String::from("CASE");
    for r in 1..=5u8 {
        for f in 1..=5u8 {
            case.push_str(&format!(
                " WHEN r_score = {r} AND f_score = {f} THEN {}",
                crate::olap::sqltext::literal(segment(r, f))
            ));
        }
    }
    case.push_str(" END");
    case
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_has_a_listed_name_and_every_name_a_cell() {
        let mut seen = std::collections::BTreeSet::new();
        for r in 1..=5 {
            for f in 1..=5 {
                let s = segment(r, f);
                assert!(segment_id(s) > 0, "{s} is not listed");
                seen.insert(s);
            }
        }
        assert_eq!(seen.len(), SEGMENTS.len());
    }
}
