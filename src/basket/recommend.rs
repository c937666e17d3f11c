//! Cross-sell recommendations from association rules.
//!
//! - Input: rules mined from the warehouse's baskets (one-item consequents), and each
//!   customer's history: the products (or categories) of all their purchases, returns and
//!   service lines left out.
//! - Output: the table `recommendations` (customer_id, rank, product_id — or `category` at
//!   the category level —, score, confidence, lift, rule), at most `top` rows per customer,
//!   rank 1 the best; and the table `basket_rules`, the rules that recommend (the columns
//!   of `ecrm basket rules`, by descending lift), in the same commit.
//! - Parameters ([`RecommendParams`]): the itemset and rule thresholds, the level, `top`
//!   (the CLI's default 5).
//!
//! A rule X ⇒ {y} fires for a customer who has bought every item of X but not y. Each item
//! a customer has not bought is scored by the best confidence × lift among the rules that
//! fire for it (confidence says how often the item follows, lift how much more often than it
//! sells anyway, so a popular item that every rule predicts does not crowd out the specific
//! ones); the rule that gave the score is kept, as text, to explain it. Ties go to the
//! higher confidence, then to the item id, so the table is stable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;

use super::fpgrowth::FrequentItemsets;
use super::rules::Rule;
use super::{FpGrowthParams, Level, RuleParams, ValidFpGrowthParams, ValidRuleParams};
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};
use crate::param::Fraction;
use crate::warehouse::{Warehouse, WriterLock, tables};
use linfa::ParamGuard;

/// One recommendation before it becomes a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub item: u32,
    pub score: f64,
    pub confidence: f64,
    pub lift: f64,
    /// Index of the rule in the rules given.
    pub rule: usize,
}

/// The top `top` recommendations for one history (item ids of `sets`), best first.
pub fn for_history(
    history: &HashSet<u32>,
    rules: &[Rule],
    by_item: &HashMap<u32, Vec<usize>>,
    baskets: u64,
    top: usize,
) -> Vec<Recommendation> {
    let mut best: HashMap<u32, Recommendation> = HashMap::new();
    for h in history {
        for &r in by_item.get(h).map(Vec::as_slice).unwrap_or(&[]) {
            let rule = &rules[r];
            let y = rule.consequent[0];
            if history.contains(&y) || !rule.antecedent.iter().all(|x| history.contains(x)) {
                continue;
            }
            let (confidence, lift) = (rule.confidence(), rule.lift(baskets));
            let cand = Recommendation {
                item: y,
                score: confidence * lift,
                confidence,
                lift,
                rule: r,
            };
            match best.get(&y) {
                Some(b) if !better(&cand, b) => {}
                _ => {
                    best.insert(y, cand);
                }
            }
        }
    }
    let mut out: Vec<Recommendation> = best.into_values().collect();
    out.sort_by(|a, b| {
        if better(a, b) {
            std::cmp::Ordering::Less
        } else if better(b, a) {
            std::cmp::Ordering::Greater
        } else {
            a.item.cmp(&b.item)
        }
    });
    out.truncate(top);
    out
}

/// Higher score, then higher confidence, then the earlier rule (rules come sorted).
fn better(a: &Recommendation, b: &Recommendation) -> bool {
    a.score
        .total_cmp(&b.score)
        .then(a.confidence.total_cmp(&b.confidence))
        .then(b.rule.cmp(&a.rule))
        .is_gt()
}

/// Rules indexed by their antecedent's first item: a rule can fire only for a history that
/// holds it, and each rule is looked at once per history.
pub fn index(rules: &[Rule]) -> HashMap<u32, Vec<usize>> {
    let mut by_item: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        if let Some(&x) = r.antecedent.first() {
            by_item.entry(x).or_default().push(i);
        }
    }
    by_item
}

/// The recommendations table for customers' histories (customer id, the ids in `sets` of
/// the frequent items they bought); `item_column` names the item column. With
/// `descriptions` (products), a `description` column follows the item, so a person reads
/// what is recommended, not only its code.
pub fn table(
    item_column: &str,
    histories: &[(String, Vec<u32>)],
    sets: &FrequentItemsets,
    rules: &[Rule],
    top: usize,
    descriptions: Option<&HashMap<String, String>>,
) -> Result<(SchemaRef, RecordBatch)> {
    let rules: Vec<Rule> = rules
        .iter()
        .filter(|r| r.consequent.len() == 1)
        .cloned()
        .collect();
    let by_item = index(&rules);
    let text = |ids: &[u32]| sets.names_sorted(ids).join(" | ");
    let (mut ids, mut ranks, mut items, mut scores, mut confs, mut lifts, mut texts) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (customer, bought) in histories {
        let history: HashSet<u32> = bought.iter().copied().collect();
        for (k, rec) in for_history(&history, &rules, &by_item, sets.baskets(), top)
            .into_iter()
            .enumerate()
        {
            let r = &rules[rec.rule];
            ids.push(customer.clone());
            ranks.push(k as u32 + 1);
            items.push(sets.name(rec.item).to_string());
            scores.push(rec.score);
            confs.push(rec.confidence);
            lifts.push(rec.lift);
            texts.push(format!(
                "{} => {}",
                text(&r.antecedent),
                text(&r.consequent)
            ));
        }
    }
    let mut fields = vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("rank", DataType::UInt32, false),
        Field::new(item_column, DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(UInt32Array::from(ranks)),
        Arc::new(StringArray::from(items.clone())),
    ];
    if let Some(d) = descriptions {
        fields.push(Field::new("description", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter(
            items.iter().map(|i| d.get(i).map(String::as_str)),
        )));
    }
    fields.extend([
        Field::new("score", DataType::Float64, false),
        Field::new("confidence", DataType::Float64, false),
        Field::new("lift", DataType::Float64, false),
        Field::new("rule", DataType::Utf8, false),
    ]);
    columns.extend([
        Arc::new(Float64Array::from(scores)) as ArrayRef,
        Arc::new(Float64Array::from(confs)),
        Arc::new(Float64Array::from(lifts)),
        Arc::new(StringArray::from(texts)),
    ]);
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok((schema, batch))
}

/// Recommendation parameters: `ecrm basket recommend`'s options and a pipeline `basket`
/// stage's keys, one type for both; [`Default`] is the one place a default is written.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendParams {
    /// Least share of invoices an itemset must be in (see `basket itemsets`).
    #[arg(long, value_name = "X", default_value_t = RecommendParams::default().min_support)]
    pub min_support: Fraction,
    /// Itemsets, and so rules, of at most this many items.
    #[arg(long, value_name = "N", default_value_t = RecommendParams::default().max_len)]
    pub max_len: usize,
    /// Least confidence of a rule that recommends, exactly.
    #[arg(long, value_name = "Y", default_value_t = RecommendParams::default().min_confidence)]
    pub min_confidence: Fraction,
    /// Least lift of a rule that recommends, exactly: above 1, the item follows more often
    /// than it sells anyway.
    #[arg(long, value_name = "Z", default_value_t = RecommendParams::default().min_lift)]
    pub min_lift: Fraction,
    /// Products (or categories) per customer.
    #[arg(long, value_name = "N", default_value_t = RecommendParams::default().top)]
    pub top: usize,
    /// Recommend products or categories.
    #[arg(long, value_enum, default_value_t = RecommendParams::default().level)]
    pub level: Level,
}

impl Default for RecommendParams {
    /// Itemsets in 0.5% of invoices, of at most 4 items; rules of confidence ≥ 0.2 and
    /// lift ≥ 1.5; 5 products per customer.
    fn default() -> Self {
        RecommendParams {
            min_support: Fraction { num: 1, den: 200 },
            max_len: 4,
            min_confidence: Fraction { num: 1, den: 5 },
            min_lift: Fraction { num: 3, den: 2 },
            top: 5,
            level: Level::Product,
        }
    }
}

impl RecommendParams {
    /// Checks each parameter; the first failure names its key and what is allowed.
    pub fn check(self) -> Result<ValidRecommendParams> {
        if self.top == 0 {
            return Err(Error::param("top", "must be at least 1"));
        }
        Ok(ValidRecommendParams {
            itemsets: FpGrowthParams::new(self.min_support)
                .max_len(Some(self.max_len))
                .check()?,
            rules: RuleParams::default()
                .min_confidence(self.min_confidence)
                .min_lift(Some(self.min_lift))
                .check()?,
            level: self.level,
            top: self.top,
        })
    }
}

/// Checked recommendation parameters: the only kind [`recommend`] accepts.
#[derive(Debug, Clone)]
pub struct ValidRecommendParams {
    itemsets: ValidFpGrowthParams,
    rules: ValidRuleParams,
    level: Level,
    top: usize,
}

impl ValidRecommendParams {
    pub fn level(&self) -> Level {
        self.level
    }
    pub fn top(&self) -> usize {
        self.top
    }
}

/// Every product's description by its code (`dim_product`), for text people read.
pub async fn product_descriptions(
    ctx: &datafusion::prelude::SessionContext,
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    olap::for_each_batch(
        ctx,
        "SELECT product_id, description FROM dim_product
         WHERE product_id IS NOT NULL AND description IS NOT NULL",
        |b| {
            let (ids, texts) = (
                olap::text_column(b.column(0))?,
                olap::text_column(b.column(1))?,
            );
            for i in 0..b.num_rows() {
                out.insert(ids.value(i).to_string(), texts.value(i).to_string());
            }
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// What a recommendation run did.
#[derive(Debug, Clone)]
pub struct RecommendSummary {
    pub baskets: String,
    pub itemsets: usize,
    pub rules: usize,
    pub customers: usize,
    pub with_recommendations: usize,
    pub rows: usize,
}

/// Mines the warehouse's baskets, derives rules and writes `recommendations` for every
/// customer with a purchase (see the module doc).
pub async fn recommend(
    wh_root: &std::path::Path,
    p: &ValidRecommendParams,
    engine: &EngineOptions,
) -> Result<RecommendSummary> {
    let lock = WriterLock::acquire(wh_root, "basket recommend")?;
    let wh = Warehouse::open(wh_root)?;
    wh.table(tables::FACT_SALES)?;
    let ctx = olap::session(&wh, engine).await?;
    let w = super::warehouse_baskets(&ctx, p.level).await?;
    let baskets = format!("{} invoices", w.baskets.len());
    let sets = p.itemsets.fit(&DatasetBase::new(w.baskets, ()))?;
    let rules = p.rules.rules(&sets)?;
    // Histories after mining: only frequent items can take part in a rule, so each history
    // is kept as their ids (4 bytes an item instead of a string).
    let histories = {
        let (item, join) = super::item_sql(p.level);
        let sql = format!(
            "SELECT DISTINCT f.customer_id, {item} AS item FROM fact_sales f {join}
             WHERE NOT f.is_return AND NOT coalesce(f.is_service, false)
               AND f.customer_id IS NOT NULL AND {item} IS NOT NULL
             ORDER BY 1, 2"
        );
        let mut histories: Vec<(String, Vec<u32>)> = Vec::new();
        olap::for_each_batch(&ctx, &sql, |b| {
            let ids = olap::text_column(b.column(0))?;
            let its = olap::text_column(b.column(1))?;
            for i in 0..b.num_rows() {
                if histories.last().is_none_or(|(c, _)| c != ids.value(i)) {
                    histories.push((ids.value(i).to_string(), Vec::new()));
                }
                if let (Some(id), Some((_, items))) = (sets.id(its.value(i)), histories.last_mut())
                {
                    items.push(id);
                }
            }
            Ok(())
        })
        .await?;
        histories
    };
    let (column, descriptions) = match p.level {
        Level::Product => ("product_id", Some(product_descriptions(&ctx).await?)),
        Level::Category => ("category", None),
    };
    let (schema, batch) = table(
        column,
        &histories,
        &sets,
        &rules,
        p.top,
        descriptions.as_ref(),
    )?;
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .map(|a| a.iter().flatten().collect::<HashSet<_>>().len())
        .unwrap_or(0);
    let rules_batch = super::rules_batch(&sets, &rules)?;
    let mut tx = wh.begin(&lock);
    let f = tx.write_arrow(
        tables::RECOMMENDATIONS,
        &schema,
        std::slice::from_ref(&batch),
    )?;
    tx.replace(tables::RECOMMENDATIONS, vec![f]);
    let f = tx.write_arrow(
        tables::BASKET_RULES,
        &rules_batch.schema(),
        std::slice::from_ref(&rules_batch),
    )?;
    tx.replace(tables::BASKET_RULES, vec![f]);
    Warehouse::commit(tx, &format!("{} recommendations", batch.num_rows()))?;
    Ok(RecommendSummary {
        baskets,
        itemsets: sets.len(),
        rules: rules.len(),
        customers: histories.len(),
        with_recommendations: ids,
        rows: batch.num_rows(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::param_key as key;

    #[test]
    fn recommend_params_are_checked_under_their_keys() {
        assert!(RecommendParams::default().check().is_ok());
        let with = |f: fn(&mut RecommendParams)| {
            let mut p = RecommendParams::default();
            f(&mut p);
            p.check()
        };
        assert_eq!(key(with(|p| p.top = 0)), "top");
        assert_eq!(key(with(|p| p.max_len = 0)), "max_len");
        assert_eq!(
            key(with(|p| p.min_support = Fraction { num: 0, den: 1 })),
            "min_support"
        );
        assert_eq!(
            key(with(|p| p.min_confidence = Fraction { num: 3, den: 2 })),
            "min_confidence"
        );
        // Read from a pipeline file, every key has its default and a fraction reads exactly.
        let p: RecommendParams =
            toml::from_str("min_support = 0.001\nlevel = \"category\"").unwrap();
        assert_eq!(p.min_support, Fraction { num: 1, den: 1000 });
        assert_eq!(p.level, Level::Category);
        assert_eq!(p.top, RecommendParams::default().top);
    }

    fn rule(x: &[u32], y: u32, count: u32, cx: u32, cy: u32) -> Rule {
        Rule {
            antecedent: x.to_vec(),
            consequent: vec![y],
            count,
            antecedent_count: cx,
            consequent_count: cy,
        }
    }

    #[test]
    fn rules_fire_only_on_whole_antecedents_and_new_items() {
        // 100 baskets. Items 0..=4.
        let rules = vec![
            rule(&[0], 2, 40, 50, 60),    // conf 0.8, lift 1.333: score 1.067
            rule(&[0, 1], 3, 20, 25, 30), // conf 0.8, lift 2.667: score 2.133
            rule(&[1], 2, 30, 40, 60),    // conf 0.75, lift 1.25: score 0.9375
            rule(&[4], 3, 10, 10, 30),    // needs item 4: does not fire
            rule(&[0], 1, 45, 50, 40),    // item 1 already bought
        ];
        let by_item = index(&rules);
        let history: HashSet<u32> = [0, 1].into();
        let got = for_history(&history, &rules, &by_item, 100, 5);
        let items: Vec<u32> = got.iter().map(|r| r.item).collect();
        assert_eq!(items, [3, 2]);
        assert_eq!(got[0].rule, 1);
        // Item 2 is scored by its best rule, not the other one.
        assert_eq!(got[1].rule, 0);
        assert!((got[1].score - 0.8 * 40.0 * 100.0 / (50.0 * 60.0)).abs() < 1e-12);
        assert_eq!(for_history(&history, &rules, &by_item, 100, 1).len(), 1);
        assert!(for_history(&[4].into(), &rules, &by_item, 100, 5)[0].item == 3);
    }
}
