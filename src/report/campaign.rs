//! The report's campaign section (`campaign_results`): each campaign's effect on the buyer
//! rate against its control arm with Newcombe's interval (a forest plot), and a table with
//! the rates, incremental revenue and ROI; campaigns without a control arm are listed with
//! no effect. "Absent" with the stage that builds it when the table is missing.

use datafusion::prelude::SessionContext;

use super::{Page, charts, money, num, percent, query, table};
use crate::error::Result;
use crate::warehouse::tables;

impl Page {
    /// Customers with consent on e-mail and phone at each month's end, and the month's grants
    /// and withdrawals ([`crate::campaign::consent`]).
    pub(super) async fn consent(
        &mut self,
        wh: &crate::warehouse::Warehouse,
        engine: &crate::olap::EngineOptions,
        as_of: chrono::NaiveDate,
        present: bool,
    ) -> Result<()> {
        let title = "Consent over time";
        if !present {
            self.absent("consent", title, "no dim_customer: load customers first");
            return Ok(());
        }
        let s = crate::campaign::consent::summary(wh, engine, Some(as_of)).await?;
        let rows = super::rows(std::slice::from_ref(&s.by_month))?;
        let series = |channel: &str| -> Vec<(f64, f64)> {
            rows.iter()
                .filter(|r| r[1] == channel)
                .enumerate()
                .map(|(i, r)| (i as f64, num(&r[2])))
                .collect()
        };
        let (email, phone) = (series("email"), series("phone"));
        let mut body = String::new();
        if !email.is_empty() {
            let svg = charts::two_lines(
                &email,
                &phone,
                ("e-mail", "phone"),
                "months since the first consent event",
                "customers with consent at month end",
            )?;
            body.push_str(&self.figure(
                "consent-over-time",
                &format!(
                    "Customers who may be contacted at each month's end: the latest consent \
                     event before it (a grant, a withdrawal, or the customer file's opt-in). \
                     {} treatment contacts were made without consent on their channel at the \
                     time.",
                    s.contacted_without_consent.num_rows()
                ),
                svg,
            ));
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .filter(|r| r[3] != "0" || r[4] != "0")
            .map(|r| r[..5].to_vec())
            .collect();
        body.push_str(&table(
            &["month", "channel", "with consent", "grants", "withdrawals"],
            &cells,
            None,
        ));
        self.section("consent", title, body);
        Ok(())
    }

    /// The uplift model's Qini curve on its held-out rows, against random targeting.
    pub(super) fn qini(&mut self, model: Option<&std::path::Path>) -> Result<()> {
        let title = "Uplift model: whom campaigns persuade";
        let Some(path) = model else {
            self.absent("qini", title, "no uplift model: run an uplift-train stage");
            return Ok(());
        };
        let m = crate::campaign::uplift::UpliftModelFile::read(path)?;
        let curve = &m.metrics.qini_curve;
        let Some(&(n, end)) = curve.last() else {
            self.absent("qini", title, "the uplift model has no Qini curve");
            return Ok(());
        };
        let svg = charts::two_lines(
            curve,
            &[(0.0, 0.0), (n, end)],
            ("model", "random"),
            "customers targeted, highest predicted uplift first",
            "incremental responders (Qini)",
        )?;
        let score = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
        let mut body = self.figure(
            "qini-curve",
            &format!(
                "The uplift model's ({}) Qini curve on {} held-out contacts: extra responders gained by \
                 targeting the customers it ranks first, against targeting at random (the \
                 line). Qini AUC {}, uplift AUC {} (as scikit-uplift computes them).",
                m.method,
                m.metrics.test_rows,
                score(m.metrics.qini_auc),
                score(m.metrics.uplift_auc)
            ),
            svg,
        );
        let rate = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let cells: Vec<Vec<String>> = m
            .metrics
            .deciles
            .iter()
            .map(|d| {
                vec![
                    d.decile.to_string(),
                    d.treated.to_string(),
                    d.control.to_string(),
                    rate(d.treated_rate),
                    rate(d.control_rate),
                    rate(d.uplift),
                    format!("{:.1}%", 100.0 * d.mean_predicted_uplift),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "decile",
                "treated",
                "control",
                "treated rate",
                "control rate",
                "uplift",
                "predicted",
            ],
            &cells,
            None,
        ));
        self.section("qini", title, body);
        Ok(())
    }

    /// What each campaign caused against its control arm.
    pub(super) async fn campaigns(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Campaigns: what they caused";
        let t = tables::CAMPAIGN_RESULTS;
        if !present {
            self.absent(
                "campaigns",
                title,
                &format!("no {t}: run a campaign-report stage"),
            );
            return Ok(());
        }
        // The split's column, when the stage had one, sits between the id and the name:
        // the section shows campaigns whole, so a split table is summarised by campaign.
        let rows = query(
            ctx,
            &format!(
                "SELECT campaign_id, sum(contacted), sum(held_out), avg(buyer_rate),
                   avg(control_buyer_rate), min(buyer_rate_difference),
                   min(buyer_rate_difference_low), min(buyer_rate_difference_high),
                   sum(incremental_revenue), sum(cost), bool_and(measurable), min(note),
                   count(*)
                 FROM {t} GROUP BY campaign_id ORDER BY campaign_id"
            ),
        )
        .await?;
        let whole = rows.iter().all(|r| r[12] == "1");
        let effects: Vec<(String, f64, f64, f64)> = rows
            .iter()
            .filter(|r| whole && r[10] == "true" && !r[5].is_empty())
            .map(|r| (r[0].clone(), num(&r[5]), num(&r[6]), num(&r[7])))
            .collect();
        let mut body = String::new();
        if !effects.is_empty() {
            let svg = charts::intervals(&effects, "buyer rate, treatment − control", 720)?;
            body.push_str(&self.figure(
                "campaign-effects",
                "Each campaign's effect on the share of contacted customers who bought in the \
                 response window: treatment minus the held-out control arm, with Newcombe's 95 % \
                 interval. An interval across 0 is no evidence of an effect; red: the campaign \
                 lowered buying.",
                svg,
            ));
        }
        // NULL reads as empty: no control arm, no effect.
        let pct = |v: &str| {
            if v.is_empty() {
                "—".to_string()
            } else {
                percent(v)
            }
        };
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let effect = if r[5].is_empty() {
                    "—".to_string()
                } else {
                    format!("{} [{}, {}]", pct(&r[5]), pct(&r[6]), pct(&r[7]))
                };
                vec![
                    r[0].clone(),
                    r[1].clone(),
                    r[2].clone(),
                    pct(&r[3]),
                    pct(&r[4]),
                    effect,
                    if r[8].is_empty() {
                        "—".into()
                    } else {
                        money(&r[8])
                    },
                    money(&r[9]),
                    r[11].clone(),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "campaign",
                "contacted",
                "held out",
                "buyer rate",
                "control",
                "effect [95 %]",
                "incremental revenue",
                "cost",
                "note",
            ],
            &cells,
            None,
        ));
        self.section("campaigns", title, body);
        Ok(())
    }
}
