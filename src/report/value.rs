//! The report's customer-value sections: value deciles (`customer_value`), the whale curve
//! (`customer_profit`) and the cohort retention heat map (`cohort_retention`). Each is
//! "absent" with the stage that would build it when its table is missing.

use datafusion::prelude::SessionContext;

use super::{Page, charts, money, num, query, table};
use crate::error::Result;
use crate::warehouse::tables;

/// Cohorts and periods shown in the heat map: the latest cohorts, their first periods.
const HEAT_COHORTS: usize = 12;
const HEAT_PERIODS: usize = 12;

impl Page {
    /// Customers, mean P(alive), expected purchases and CLV per value decile.
    pub(super) async fn value(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Customer value by decile";
        let t = tables::CUSTOMER_VALUE;
        if !present {
            self.absent(
                "value",
                title,
                &format!("no {t}: run clv-train and clv-score stages"),
            );
            return Ok(());
        }
        let rows = query(
            ctx,
            &format!(
                "SELECT value_decile, count(*), avg(p_alive),
                        sum(expected_purchases), CAST(sum(clv) AS DOUBLE)
                 FROM {t} GROUP BY value_decile ORDER BY value_decile NULLS LAST"
            ),
        )
        .await?;
        let labels: Vec<String> = rows.iter().map(|r| format!("decile {}", r[0])).collect();
        let clv: Vec<f64> = rows.iter().map(|r| num(&r[4])).collect();
        let total: f64 = clv.iter().sum();
        let svg = charts::bars(&labels, &clv, "CLV", 1, (720, 300))?;
        let mut body = self.figure(
            "value-deciles",
            &format!(
                "Discounted customer value over the scoring horizon by value decile (1 = the \
                 most valuable tenth), {} in all.",
                charts::short_number(total)
            ),
            svg,
        );
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r[0].clone(),
                    r[1].clone(),
                    format!("{:.3}", num(&r[2])),
                    format!("{:.1}", num(&r[3])),
                    money(&r[4]),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "decile",
                "customers",
                "mean P(alive)",
                "expected purchases",
                "CLV",
            ],
            &cells,
            None,
        ));
        self.section("value", title, body);
        Ok(())
    }

    /// The value model's tracking: cumulative repeat purchases week by week, actual against
    /// what the model expects (over calibration, and the hold-out when it has one).
    pub(super) async fn tracking(
        &mut self,
        model: Option<&std::path::Path>,
        warehouse: &std::path::Path,
        engine: &crate::olap::EngineOptions,
    ) -> Result<()> {
        let title = "Customer value: repeat purchases tracked";
        let Some(path) = model else {
            self.absent("tracking", title, "no value model: run a clv-train stage");
            return Ok(());
        };
        let model = crate::value::model::ModelFile::read(path)?;
        if model.source.kind != "warehouse" {
            self.absent(
                "tracking",
                title,
                "the value model was not trained on the warehouse",
            );
            return Ok(());
        }
        // A model the warehouse no longer fits (e.g. rolled back) leaves the section out
        // with the reason, not the whole report.
        let e = match crate::value::jobs::evaluate(&model, warehouse, engine).await {
            Ok((e, _)) => e,
            Err(err) => {
                let why = format!("cannot evaluate the value model: {err}");
                self.absent("tracking", title, &why);
                return Ok(());
            }
        };
        let actual: Vec<(f64, f64)> = e
            .tracking
            .iter()
            .map(|w| (w.week as f64, w.actual_cumulative as f64))
            .collect();
        let expected: Vec<(f64, f64)> = e
            .tracking
            .iter()
            .map(|w| (w.week as f64, w.expected_cumulative))
            .collect();
        let svg = charts::two_lines(
            &actual,
            &expected,
            ("actual", "expected"),
            "weeks since the first acquisition",
            "cumulative repeat purchases",
        )?;
        let (last_actual, last_expected) = (
            actual.last().map_or(0.0, |p| p.1),
            expected.last().map_or(0.0, |p| p.1),
        );
        let holdout = match &e.holdout {
            Some(h) => format!(
                " On the hold-out after {}: {} repeat purchases against {:.0} expected; per customer correlation {}.",
                model.source.calibration_end.map_or(String::new(), |d| d.to_string()),
                h.actual,
                h.expected,
                h.correlation.map_or("n/a".into(), |r| format!("{r:.3}"))
            ),
            None => " The model was trained on every purchase, so this is how well it fits, not a forecast.".into(),
        };
        let body = self.figure(
            "value-tracking",
            &format!(
                "Cumulative repeat purchases of {} customers, week by week, against what the {} \
                 model expects: {} actual, {:.0} expected at the end.{holdout}",
                e.customers,
                model.purchases.method(),
                last_actual,
                last_expected
            ),
            svg,
        );
        self.section("tracking", title, body);
        Ok(())
    }

    /// The whale curve: the cumulative share of profit at each tenth of customers.
    pub(super) async fn whale(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Profitability: the whale curve";
        let t = tables::CUSTOMER_PROFIT;
        if !present {
            self.absent("profit", title, &format!("no {t}: run a profit stage"));
            return Ok(());
        }
        let rows = query(
            ctx,
            &format!(
                "SELECT profit_decile, count(*), CAST(sum(gross_profit) AS DOUBLE),
                        max(cumulative_profit_share)
                 FROM {t} WHERE profit_decile IS NOT NULL GROUP BY profit_decile ORDER BY profit_decile"
            ),
        )
        .await?;
        let unknown = query(
            ctx,
            &format!("SELECT count(*) FROM {t} WHERE gross_profit IS NULL"),
        )
        .await?;
        let unknown = unknown.first().map_or("0".to_string(), |r| r[0].clone());
        let labels: Vec<String> = rows.iter().map(|r| format!("top {}0%", r[0])).collect();
        let share: Vec<f64> = rows.iter().map(|r| 100.0 * num(&r[3])).collect();
        let peak = share.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let svg = charts::bars(&labels, &share, "% of total profit", 1, (720, 300))?;
        let mut body = self.figure(
            "whale-curve",
            &format!(
                "Cumulative share of gross profit made by the most profitable customers, tenth by \
                 tenth; it peaks at {peak:.1}% and ends at 100%: what lies above 100% the least \
                 profitable give back. {unknown} customers with an unknown cost of goods are \
                 left out."
            ),
            svg,
        );
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r[0].clone(),
                    r[1].clone(),
                    money(&r[2]),
                    format!("{:.1}%", 100.0 * num(&r[3])),
                ]
            })
            .collect();
        body.push_str(&table(
            &["decile", "customers", "gross profit", "cumulative share"],
            &cells,
            None,
        ));
        self.section("profit", title, body);
        Ok(())
    }

    /// Retention of the latest cohorts in their first periods, as a heat map of percentages.
    pub(super) async fn cohorts(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Cohort retention";
        let t = tables::COHORT_RETENTION;
        if !present {
            self.absent("cohorts", title, &format!("no {t}: run a cohorts stage"));
            return Ok(());
        }
        let rows = query(
            ctx,
            &format!(
                "SELECT CAST(cohort AS VARCHAR), period_number, retention FROM {t}
                 WHERE cohort IN (SELECT DISTINCT cohort FROM {t} ORDER BY cohort DESC LIMIT {HEAT_COHORTS})
                   AND period_number < {HEAT_PERIODS} AND retention IS NOT NULL
                 ORDER BY 1, 2"
            ),
        )
        .await?;
        let mut cohorts: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
        cohorts.dedup();
        if cohorts.is_empty() {
            self.absent("cohorts", title, &format!("{t} has no complete period"));
            return Ok(());
        }
        let periods = rows
            .iter()
            .map(|r| num(&r[1]) as usize + 1)
            .max()
            .unwrap_or(1);
        let mut grid = vec![vec![0u64; periods]; cohorts.len()];
        for r in &rows {
            let c = cohorts.iter().position(|x| *x == r[0]).unwrap_or(0);
            grid[c][num(&r[1]) as usize] = (100.0 * num(&r[2])).round() as u64;
        }
        let columns: Vec<String> = (0..periods).map(|k| k.to_string()).collect();
        let labels: Vec<String> = cohorts
            .iter()
            .map(|c| c[..7.min(c.len())].to_string())
            .collect();
        let svg = charts::heat_map(
            &grid,
            &labels,
            &columns,
            "periods since the first purchase",
            "cohort",
        )?;
        let body = self.figure(
            "cohort-heat-map",
            &format!(
                "Percentage of each cohort buying in each period since its first purchase (the \
                 latest {} cohorts, complete periods only; period 0 is 100% by definition).",
                cohorts.len()
            ),
            svg,
        );
        self.section("cohorts", title, body);
        Ok(())
    }
}
