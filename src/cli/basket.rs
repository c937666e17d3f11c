//! `ecrm basket itemsets|rules|recommend` and `ecrm sequence`: parameters checked before any
//! data is read, then the baskets or sequences, the mining, and the results printed, written
//! to a file or to a table.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use linfa::ParamGuard;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;

use super::sql::Sink;
use super::{Context, FormatArgs, say};
use crate::basket::{
    self, BasketFormat, FpGrowthParams, Level, RuleParams, Separator, Source,
    recommend::{RecommendParams, recommend},
};
use crate::error::Result;
use crate::param::Fraction;
use crate::sequence::{self, SequenceFormat, SequenceParams};
use crate::warehouse::tables;

#[derive(Debug, Subcommand)]
pub enum BasketAction {
    /// Frequent itemsets (FP-growth) of the warehouse's invoices or of a basket file:
    /// items, size, count, support; by descending count.
    Itemsets(ItemsetsArgs),
    /// Association rules X => Y with exact support, confidence and lift thresholds:
    /// antecedent, consequent, sizes, count, support, confidence, lift, leverage,
    /// conviction; by descending lift.
    Rules(RulesArgs),
    /// Cross-sell: each customer's top N products not yet bought, from the rules that fire
    /// on their history, into table recommendations.
    Recommend(RecommendParams),
}

/// Where baskets come from.
#[derive(Debug, Args)]
pub struct BasketSourceArgs {
    /// Baskets from this file instead of the warehouse.
    #[arg(long, value_name = "FILE")]
    pub baskets: Option<PathBuf>,
    /// The file's layout: one basket per line, or a basket-id / item table (CSV with a
    /// header, or Parquet).
    #[arg(long, value_enum, default_value_t, requires = "baskets")]
    pub basket_format: BasketFormat,
    /// Lines: the item separator, one character, `tab`, `space` or `whitespace`. Default:
    /// `,` for a .csv file, else whitespace.
    #[arg(long, value_name = "C", requires = "baskets")]
    pub separator: Option<Separator>,
    /// Warehouse baskets of products or of their categories.
    #[arg(long, value_enum, default_value_t, conflicts_with = "baskets")]
    pub level: Level,
}

impl BasketSourceArgs {
    fn source(&self, wh_root: &std::path::Path) -> Source {
        match &self.baskets {
            Some(path) => Source::File {
                path: path.clone(),
                format: self.basket_format,
                separator: self.separator,
            },
            None => Source::Warehouse {
                root: wh_root.to_path_buf(),
                level: self.level,
            },
        }
    }
}

/// FP-growth's thresholds.
#[derive(Debug, Args)]
pub struct MiningArgs {
    /// Least share of baskets an itemset must be in, exactly: 0.001, 1e-3, 0.1% or 1/1000.
    /// An itemset needs ceil(min_support × baskets) baskets.
    #[arg(long, value_name = "X")]
    pub min_support: Fraction,
    /// Itemsets of at most this many items.
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Stop with an error beyond this many itemsets (memory stays bounded).
    #[arg(long, value_name = "N", default_value_t = basket::fpgrowth::DEFAULT_MAX_ITEMSETS)]
    pub max_itemsets: usize,
}

impl MiningArgs {
    fn params(&self) -> Result<basket::ValidFpGrowthParams> {
        FpGrowthParams::new(self.min_support)
            .max_len(self.max_len)
            .max_itemsets(self.max_itemsets)
            .check()
    }
}

/// The rule thresholds.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Least confidence count(X ∪ Y) / count(X), exactly (default 0.8, as arules).
    #[arg(long, value_name = "Y", default_value_t = basket::rules::DEFAULT_MIN_CONFIDENCE)]
    pub min_confidence: Fraction,
    /// Least lift confidence / support(Y), exactly.
    #[arg(long, value_name = "Z")]
    pub min_lift: Option<Fraction>,
}

#[derive(Debug, Args)]
pub struct ItemsetsArgs {
    #[command(flatten)]
    pub source: BasketSourceArgs,
    #[command(flatten)]
    pub mining: MiningArgs,
    /// Write the itemsets to this file (format from --format or the extension).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(flatten)]
    pub source: BasketSourceArgs,
    #[command(flatten)]
    pub mining: MiningArgs,
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Only rules whose antecedent holds this item.
    #[arg(long, value_name = "ITEM")]
    pub antecedent: Option<String>,
    /// Only rules whose consequent holds this item.
    #[arg(long, value_name = "ITEM")]
    pub consequent: Option<String>,
    /// Consequents of 1 to N items (default 1, the arules convention).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub consequent_size: usize,
    /// Write the rules to this file (format from --format or the extension).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// Runs one `ecrm basket` action.
pub fn run(action: BasketAction, cx: &Context<'_>) -> Result<()> {
    let (wh_root, engine) = (cx.wh_root.as_path(), &cx.engine);
    match action {
        BasketAction::Itemsets(a) => {
            let params = a.mining.params()?;
            let mut sink = Sink::new(a.format.format, a.out.as_deref(), a.format.max_rows)?;
            let (baskets, note) = cx.block(basket::load(&a.source.source(wh_root), engine))?;
            let t = Instant::now();
            let sets = params.fit(&DatasetBase::new(baskets, ()))?;
            summary(&note, &sets, t);
            let (schema, batch) = basket::itemsets_batch(&sets)?;
            sink.emit(&schema, &[batch], true)
        }
        BasketAction::Rules(a) => {
            let params = a.mining.params()?;
            let rule_params = RuleParams::default()
                .min_confidence(a.rule.min_confidence)
                .min_lift(a.rule.min_lift)
                .max_consequent(a.consequent_size)
                .antecedent(a.antecedent)
                .consequent(a.consequent)
                .check()?;
            let mut sink = Sink::new(a.format.format, a.out.as_deref(), a.format.max_rows)?;
            let (baskets, note) = cx.block(basket::load(&a.source.source(wh_root), engine))?;
            let t = Instant::now();
            let sets = params.fit(&DatasetBase::new(baskets, ()))?;
            summary(&note, &sets, t);
            let t = Instant::now();
            let rules = rule_params.rules(&sets)?;
            tracing::info!(
                "{} rules at confidence ≥ {}{} in {:.3} s",
                rules.len(),
                a.rule.min_confidence,
                a.rule
                    .min_lift
                    .map_or(String::new(), |l| format!(" and lift ≥ {l}")),
                t.elapsed().as_secs_f64()
            );
            let batch = basket::rules_batch(&sets, &rules)?;
            sink.emit(&batch.schema(), &[batch], true)
        }
        BasketAction::Recommend(a) => {
            let p = a.check()?;
            let s = cx.block(recommend(wh_root, &p, engine))?;
            say(
                &mut std::io::stdout().lock(),
                format_args!(
                    "{} rows for {} of {} customers into table {} ({} itemsets and {} rules from {})",
                    s.rows,
                    s.with_recommendations,
                    s.customers,
                    tables::RECOMMENDATIONS,
                    s.itemsets,
                    s.rules,
                    s.baskets
                ),
            )
        }
    }
}

/// The mining summary on stderr.
fn summary(note: &str, sets: &basket::fpgrowth::FrequentItemsets, t: Instant) {
    tracing::info!(
        "{note}; an itemset needs {} baskets; {} frequent itemsets in {:.3} s",
        sets.min_count(),
        sets.len(),
        t.elapsed().as_secs_f64()
    );
}

#[derive(Debug, Args)]
pub struct SequenceArgs {
    #[command(flatten)]
    pub params: SequenceParams,
    /// Sequences from this file instead of the warehouse's customers.
    #[arg(long, value_name = "FILE")]
    pub sequences: Option<PathBuf>,
    /// The file's layout: a sequence-id / time / item table, or SPMF text.
    #[arg(long, value_enum, default_value_t, requires = "sequences")]
    pub sequence_format: SequenceFormat,
    /// Write the patterns to this file (format from --format or the extension).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm sequence`.
pub fn run_sequence(a: SequenceArgs, cx: &Context<'_>) -> Result<()> {
    let params = a.params.check()?;
    let mut sink = Sink::new(a.format.format, a.out.as_deref(), a.format.max_rows)?;
    let source = match &a.sequences {
        Some(path) => sequence::Source::File {
            path: path.clone(),
            format: a.sequence_format,
        },
        None => params.warehouse(&cx.wh_root),
    };
    let (seqs, note) = cx.block(sequence::load(&source, &cx.engine))?;
    let t = Instant::now();
    let patterns = params.mining().fit(&DatasetBase::new(seqs, ()))?;
    tracing::info!(
        "{note}; a pattern needs {} sequences; {} frequent patterns in {:.3} s",
        patterns.min_count(),
        patterns.len(),
        t.elapsed().as_secs_f64()
    );
    let (schema, batch) = sequence::patterns_batch(&patterns)?;
    sink.emit(&schema, &[batch], true)
}
