//! The report's web section (`web_sessions`, `fact_web_event`): the shop's funnel (product
//! view → add to cart → checkout → purchase, within a session), sessions and conversion by
//! channel and by device, and the top paths. "Absent" with the stage that builds it when
//! the table is missing.

use datafusion::prelude::SessionContext;

use super::{Page, charts, num, percent, query, rows, table};
use crate::error::Result;
use crate::warehouse::tables;
use crate::web::funnel::{WebFunnelParams, funnel};
use crate::web::paths::{Show, WebPathsParams, paths};

/// The funnel the report draws: the web shop's buying steps.
const STEPS: [&str; 4] = ["product_view", "add_to_cart", "checkout", "purchase"];

impl Page {
    /// The funnel chart, sessions by channel and device, top paths.
    pub(super) async fn web(
        &mut self,
        ctx: &SessionContext,
        wh: &crate::warehouse::Warehouse,
        engine: &crate::olap::EngineOptions,
        as_of: chrono::NaiveDate,
        present: bool,
    ) -> Result<()> {
        let title = "Web: funnel, traffic and paths";
        if !present {
            let why = format!("no {}: run a web-sessions stage", tables::WEB_SESSIONS);
            self.absent("web", title, &why);
            return Ok(());
        }
        let mut body = String::new();
        let params = WebFunnelParams {
            steps: STEPS.map(String::from).to_vec(),
            ..WebFunnelParams::default()
        };
        let (f, _) = funnel(wh, &params, Some(as_of), engine).await?;
        let steps = rows(std::slice::from_ref(&f))?;
        let svg = session_bars(&steps, 1, 2)?;
        let last = steps.last().map(|r| percent(&r[4])).unwrap_or_default();
        body.push_str(&self.figure(
            "web-funnel",
            &format!(
                "Sessions that took each step after the ones before it, in order ({last} of the \
                 sessions that viewed a product went on to buy)."
            ),
            svg,
        ));
        self.web_traffic(ctx, &mut body).await?;
        let top = WebPathsParams {
            show: Show::Paths,
            top: 10,
            ..WebPathsParams::default()
        };
        let (_, batches, _) = paths(wh, &top, Some(as_of), engine).await?;
        let cells: Vec<Vec<String>> = rows(&batches)?
            .into_iter()
            .map(|r| vec![r[0].clone(), r[2].clone(), percent(&r[3])])
            .collect();
        body.push_str("<h3>Top paths (first five pages)</h3>\n");
        body.push_str(&table(
            &["path", "sessions", "share"],
            &cells,
            Some("web-paths"),
        ));
        self.section("web", title, body);
        Ok(())
    }

    /// Sessions by channel (a chart) and by channel and device (a table).
    async fn web_traffic(&mut self, ctx: &SessionContext, body: &mut String) -> Result<()> {
        let t = tables::WEB_SESSIONS;
        let by_channel = query(
            ctx,
            &format!(
                "SELECT COALESCE(channel, '(unknown)'), count(*) FROM {t}
                 GROUP BY 1 ORDER BY 2 DESC, 1"
            ),
        )
        .await?;
        let svg = session_bars(&by_channel, 0, 1)?;
        body.push_str(&self.figure(
            "web-channels",
            "Sessions by the channel of their first event.",
            svg,
        ));
        let cells = query(
            ctx,
            &format!(
                "SELECT COALESCE(channel, '(unknown)'), COALESCE(device, '(unknown)'), count(*),
                   avg(CASE WHEN converted THEN 1.0 ELSE 0.0 END), avg(pages),
                   CAST(sum(revenue) AS DOUBLE)
                 FROM {t} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
            ),
        )
        .await?;
        let cells: Vec<Vec<String>> = cells
            .into_iter()
            .map(|r| {
                vec![
                    r[0].clone(),
                    r[1].clone(),
                    r[2].clone(),
                    percent(&r[3]),
                    format!("{:.1}", num(&r[4])),
                    format!("{:.2}", num(&r[5])),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "channel",
                "device",
                "sessions",
                "conversion",
                "pages per session",
                "revenue",
            ],
            &cells,
            Some("web-traffic"),
        ));
        Ok(())
    }
}

/// Horizontal bars of sessions: labels from column `label` of `rows`, counts from `count`.
fn session_bars(rows: &[Vec<String>], label: usize, count: usize) -> Result<String> {
    let labels: Vec<String> = rows.iter().map(|r| r[label].clone()).collect();
    let values: Vec<f64> = rows.iter().map(|r| num(&r[count])).collect();
    charts::hbars(
        &labels,
        &values,
        &vec![false; values.len()],
        "sessions",
        720,
    )
}
