//! The plan of a pipeline: which stage runs after which, and what `--select` picks.
//!
//! Every table has one producer; a stage depends on the producers of the tables it reads
//! (and of the tables its data tests read), and on the stages in its `after`; stages run in
//! dependency order, file order among independent ones (Kahn's algorithm). A table nothing
//! produces, a table two stages produce, and a cycle are errors found before any data is
//! touched, the cycle reported with its path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Kind, Pipeline, Stage};
use crate::error::{Error, Result};

impl Pipeline {
    /// The stages `--select` picks: `NAME` is that stage, `NAME+` it and every stage
    /// downstream of it. No selection is every stage. Returns names in run order.
    pub fn select(&self, selectors: &[String]) -> Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return Ok(self.stages.iter().map(|s| s.name.clone()).collect());
        }
        let mut picked = BTreeSet::new();
        for sel in selectors {
            let (name, downstream) = match sel.strip_suffix('+') {
                Some(n) => (n, true),
                None => (sel.as_str(), false),
            };
            if !self.stages.iter().any(|s| s.name == name) {
                let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::param(
                    "select",
                    format!(
                        "{name:?} is not a stage of {} (stages: {})",
                        self.file.display(),
                        names.join(", ")
                    ),
                ));
            }
            picked.insert(name.to_string());
            if downstream {
                for s in &self.stages {
                    if self.reaches(name, &s.name) {
                        picked.insert(s.name.clone());
                    }
                }
            }
        }
        Ok(picked)
    }

    /// True when `to` is `from` or lies downstream of it.
    fn reaches(&self, from: &str, to: &str) -> bool {
        if from == to {
            return true;
        }
        let Some(stage) = self.stages.iter().find(|s| s.name == to) else {
            return false;
        };
        stage.upstream.iter().any(|u| self.reaches(from, u))
    }
}

/// Links each stage to the producers of its inputs, checks that every input has one and
/// every table one producer, and orders the stages (Kahn's algorithm, file order among
/// ready stages); a cycle is reported with its path.
pub(super) fn order(
    file: &Path,
    mut stages: Vec<Stage>,
    external: &[String],
    after: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<Stage>> {
    let producer = producers(file, &stages, external)?;
    // A report reads what the pipeline builds of its tables, and comes last.
    for s in stages.iter_mut().filter(|s| s.kind == Kind::Report) {
        s.inputs
            .retain(|i| producer.contains_key(i.as_str()) || external.contains(i));
    }
    let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    let upstream = stages
        .iter()
        .map(|s| upstream_of(file, s, &names, &producer, external, after))
        .collect::<Result<Vec<_>>>()?;
    for (s, up) in stages.iter_mut().zip(upstream) {
        s.upstream = up;
    }
    // Kahn's algorithm; among ready stages, the first in the file goes first.
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    let mut left = stages;
    while !left.is_empty() {
        let Some(i) = left
            .iter()
            .position(|s| s.upstream.iter().all(|u| done.contains(u)))
        else {
            let cycle = find_cycle(&left);
            return Err(Error::config(
                file,
                format!("stages.{}", cycle[0]),
                format!(
                    "the stages depend on each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            ));
        };
        let s = left.remove(i);
        done.insert(s.name.clone());
        order.push(s);
    }
    Ok(order)
}

/// The stage that writes each table; a table has one producer, and none for an external
/// table.
fn producers(
    file: &Path,
    stages: &[Stage],
    external: &[String],
) -> Result<BTreeMap<String, String>> {
    let mut producer: BTreeMap<String, String> = BTreeMap::new();
    for s in stages {
        for o in &s.outputs {
            if external.contains(o) {
                return Err(Error::config(
                    file,
                    format!("stages.{} (line {})", s.name, s.line),
                    format!("writes {o}, which `external` says another process builds"),
                ));
            }
            if let Some(other) = producer.insert(o.clone(), s.name.clone()) {
                return Err(Error::config(
                    file,
                    format!("stages.{} (line {})", s.name, s.line),
                    format!("writes {o}, which stage {other} writes too; a table has one producer"),
                ));
            }
        }
    }
    Ok(producer)
}

/// The stages `s` waits for: the producers of what it reads (inputs, the inputs it reads if
/// built, and data tests), its `after` list, and for a report every other stage.
fn upstream_of(
    file: &Path,
    s: &Stage,
    names: &[String],
    producer: &BTreeMap<String, String>,
    external: &[String],
    after: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let mut up = BTreeSet::new();
    if s.kind == Kind::Report {
        up.extend(names.iter().filter(|n| **n != s.name).cloned());
    }
    let built = s.inputs_if_built.iter().filter_map(|i| producer.get(i));
    up.extend(built.filter(|p| **p != s.name).cloned());
    let mut reads: Vec<&String> = s.inputs.iter().collect();
    reads.extend(s.tests.iter().flat_map(|t| t.references()));
    for input in reads {
        match producer.get(input.as_str()) {
            Some(p) if *p != s.name => {
                up.insert(p.to_string());
            }
            Some(_) => {}
            None if external.contains(input) => {}
            None => {
                let what = if let Some(m) = input.strip_prefix("model:") {
                    format!("model {m:?}, which no churn-train stage writes")
                } else {
                    format!(
                        "table {input}, which no stage writes; add the stage that builds \
                         it, or list it in `external` if another process does"
                    )
                };
                return Err(Error::config(
                    file,
                    format!("stages.{} (line {})", s.name, s.line),
                    format!("reads {what}"),
                ));
            }
        }
    }
    for a in after.get(&s.name).into_iter().flatten() {
        if !names.contains(a) {
            return Err(Error::config(
                file,
                format!("stages.{}.after (line {})", s.name, s.line),
                format!("{a:?} is not a stage (stages: {})", names.join(", ")),
            ));
        }
        up.insert(a.clone());
    }
    Ok(up.into_iter().collect())
}

/// A cycle among stages none of which can run: walk upstream from the first until a stage
/// repeats.
fn find_cycle(left: &[Stage]) -> Vec<String> {
    let mut path: Vec<String> = vec![left[0].name.clone()];
    loop {
        let current = left
            .iter()
            .find(|s| Some(&s.name) == path.last())
            .expect("the path holds stages that are left");
        let next = current
            .upstream
            .iter()
            .find(|u| left.iter().any(|s| &s.name == *u))
            .expect("a stage that cannot run waits for a stage that is left")
            .clone();
        if let Some(start) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[start..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0].clone());
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        Pipeline::parse(Path::new("p.toml"), text)
    }

    const CHAIN: &str = r#"
        external = ["fact_sales", "dim_product", "dim_customer"]
        [stages.c]
        kind = "sql"
        sql = "SELECT * FROM b"
        inputs = ["b"]
        output = "c"
        [stages.a]
        kind = "sql"
        sql = "SELECT 1 AS x FROM fact_sales"
        inputs = ["fact_sales"]
        output = "a"
        [stages.b]
        kind = "sql"
        sql = "SELECT * FROM a"
        inputs = ["a"]
        output = "b"
        [stages.d]
        kind = "features"
    "#;

    #[test]
    fn stages_run_after_their_producers_and_in_file_order_otherwise() {
        let p = parse(CHAIN).unwrap();
        let order: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(p.stage("c").unwrap().upstream, ["b"]);
    }

    #[test]
    fn a_stage_that_builds_the_mart_waits_for_web_events_when_the_pipeline_loads_them() {
        // (CHAIN's features stage has no such producer, and needs none.)
        let text = r#"
            external = ["fact_sales", "dim_product", "dim_customer"]
            [stages.mart]
            kind = "features"
            [stages.clicks]
            kind = "sql"
            sql = "SELECT 1 AS x FROM fact_sales"
            inputs = ["fact_sales"]
            output = "fact_web_event"
        "#;
        let p = parse(text).unwrap();
        let order: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["clicks", "mart"]);
        assert_eq!(p.stage("mart").unwrap().upstream, ["clicks"]);
    }

    #[test]
    fn select_with_plus_takes_everything_downstream() {
        let p = parse(CHAIN).unwrap();
        let got: Vec<String> = p.select(&["b+".into()]).unwrap().into_iter().collect();
        assert_eq!(got, ["b", "c"]);
        let got: Vec<String> = p
            .select(&["a".into(), "d".into()])
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, ["a", "d"]);
        assert!(p.select(&["zz".into()]).is_err());
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        let text = r#"
            [stages.a]
            kind = "sql"
            sql = "SELECT * FROM b"
            inputs = ["b"]
            output = "a"
            [stages.b]
            kind = "sql"
            sql = "SELECT * FROM a"
            inputs = ["a"]
            output = "b"
        "#;
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("cycle: a → b → a") || e.contains("cycle: b → a → b"),
            "{e}"
        );
    }

    #[test]
    fn sql_that_reads_an_undeclared_table_is_refused() {
        let text = r#"
            external = ["fact_sales"]
            [stages.a]
            kind = "sql"
            sql = "WITH t AS (SELECT * FROM fact_sales) SELECT * FROM t JOIN dim_product USING (product_key)"
            inputs = ["fact_sales"]
            output = "a"
        "#;
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("reads dim_product but inputs lists [fact_sales]"),
            "{e}"
        );
    }
}
