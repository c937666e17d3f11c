//! The HTML report: written by the nightly pipeline's report stage and by `ecrm report`,
//! self-contained, with every chart, and rendered by a real browser (chromium, headless)
//! without a single network request.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pipeline::Workspace;
use super::support::{ecrm_ok, scalar};

/// The nightly pipeline run in a fresh workspace; returns it and the report's path.
fn nightly_report() -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let (code, _, err) = ws.run(&ws.path("pipelines/nightly.toml"), &[]);
    assert_eq!(code, 0, "{err}");
    let page = ws.path("notebooks-out/nightly/2024-11-29/index.html");
    assert!(page.is_file(), "the report stage wrote {}", page.display());
    (ws, page)
}

#[test]
fn the_report_holds_every_chart_and_fetches_nothing() {
    let (ws, page) = nightly_report();
    let html = std::fs::read_to_string(&page).unwrap();
    for chart in ecrm::report::CHARTS {
        assert!(
            html.contains(&format!("<figure data-chart=\"{chart}\">\n<svg")),
            "chart {chart} is missing"
        );
    }
    assert!(html.contains("<table data-table=\"top-rules\">"));
    assert!(html.contains("content=\"default-src 'none'; style-src 'unsafe-inline'\""));
    // Nothing that could fetch: no scripts, links, images, frames, CSS urls or imports.
    for fetcher in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        assert!(!html.contains(fetcher), "the page holds {fetcher}");
    }

    // Figures in the page agree with the warehouse, computed here independently.
    let wh = ws.warehouse();
    let read = scalar(&wh, "SELECT sum(rows_read) FROM loads");
    let rejected = scalar(&wh, "SELECT count(*) FROM rejects");
    assert!(
        html.contains(&format!(
            "Rejected rows by reason code: {rejected} of {read} rows read"
        )),
        "{read} / {rejected}"
    );
    let best: f64 = scalar(&wh, "SELECT max(lift) FROM basket_rules")
        .parse()
        .unwrap();
    let best = format!("{best:.2}");
    let first_rule = html.split("data-table=\"top-rules\"").nth(1).unwrap();
    let first_row = first_rule.split("</tr>").nth(1).unwrap();
    assert!(
        first_row.ends_with(&format!("<td class=\"n\">{best}</td>")),
        "{first_row}"
    );
    let months = scalar(
        &wh,
        "SELECT count(DISTINCT date_trunc('month', invoice_ts)) FROM fact_sales",
    );
    assert!(html.contains(&format!("per month, {months} months")));
    // The whale curve's peak, and the value deciles' customers, from the tables.
    let peak: f64 = scalar(
        &wh,
        "SELECT max(cumulative_profit_share) FROM customer_profit WHERE profit_decile IS NOT NULL",
    )
    .parse()
    .unwrap();
    assert!(html.contains(&format!("it peaks at {:.1}%", 100.0 * peak)));
    // The tracking plot ends at the repeat purchases (purchase days after each customer's
    // first), counted here from the order lines.
    let repeats = scalar(
        &wh,
        "SELECT count(*) - count(DISTINCT customer_id) FROM (
           SELECT DISTINCT customer_id, CAST(invoice_ts AS DATE) FROM fact_sales
           WHERE customer_id IS NOT NULL AND NOT is_return AND NOT is_service)",
    );
    assert!(
        html.contains(&format!("the pareto-nbd model expects: {repeats} actual")),
        "tracking ends at {repeats}"
    );
    let scored = scalar(
        &wh,
        "SELECT count(*) FROM customer_value WHERE value_decile = 1",
    );
    let value = &html[html.find("<section id=\"value\">").unwrap()..];
    let value = &value[..value.find("</section>").unwrap()];
    assert!(
        value.contains(&format!(
            "<td class=\"n\">1</td><td class=\"n\">{scored}</td>"
        )),
        "value decile 1: {value}"
    );

    // `ecrm report` writes the same sections for the latest run, into --out-dir.
    let out = ws.path("elsewhere");
    let printed = ecrm_ok(&wh, &["report", "--out-dir", out.to_str().unwrap()]);
    let path = out.join("nightly/2024-11-29/index.html");
    assert_eq!(printed.trim(), path.display().to_string());
    let again = std::fs::read_to_string(&path).unwrap();
    for chart in ecrm::report::CHARTS {
        assert!(
            again.contains(&format!("data-chart=\"{chart}\"")),
            "{chart}"
        );
    }
}

/// The first of chromium's names on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// A local HTTP proxy that records the host of every request it gets (and answers none).
struct Proxy {
    port: u16,
    hosts: Arc<Mutex<BTreeSet<String>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hosts = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = hosts.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 512];
                let n = stream.read(&mut buf).unwrap_or(0);
                // `CONNECT host:443 HTTP/1.1` or `GET http://host/path HTTP/1.1`.
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let target = line.split(' ').nth(1).unwrap_or("?");
                let host = target
                    .trim_start_matches("http://")
                    .split(['/', ':'])
                    .next()
                    .unwrap_or("?")
                    .to_string();
                seen.lock().unwrap().insert(host);
            }
        });
        Proxy { port, hosts }
    }

    fn hosts(&self) -> BTreeSet<String> {
        self.hosts.lock().unwrap().clone()
    }
}

/// Runs headless chromium on `page` with every request sent to `proxy`; returns its exit
/// success and what it printed. `mode` is `--screenshot=FILE` or `--dump-dom`.
fn browse(
    browser: &Path,
    page: &Path,
    proxy: &Proxy,
    profile: &Path,
    mode: &str,
) -> (bool, String) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--window-size=1000,5200",
            &format!("--proxy-server=http://127.0.0.1:{}", proxy.port),
            // Loopback too goes through the proxy.
            "--proxy-bypass-list=<-loopback>",
            &format!("--user-data-dir={}", profile.display()),
            mode,
        ])
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    (status.is_some_and(|s| s.success()), out)
}

#[test]
fn the_report_renders_in_chromium_without_network_requests() {
    let required = std::env::var("ECRM_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let Some(browser) = chromium() else {
        assert!(
            !required,
            "ECRM_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no chromium on PATH, so the report was not rendered in a browser");
        return;
    };
    let (ws, page) = nightly_report();
    // Chromium talks to its own services (sign-in, time, the new-tab page's search
    // preconnects) whatever page it shows: what an empty page makes it contact is the
    // baseline, and the report may add no host to it. (The page's Content-Security-Policy
    // and the static checks above forbid any fetch in the first place.)
    let empty = ws.path("empty.html");
    std::fs::write(&empty, "<!DOCTYPE html><html><body>empty</body></html>").unwrap();
    let baseline = Proxy::start();
    let (ok, _) = browse(
        &browser,
        &empty,
        &baseline,
        &ws.path("profile-0"),
        "--dump-dom",
    );
    assert!(ok);

    let proxy = Proxy::start();
    let png = ws.path("report.png");
    let (ok, _) = browse(
        &browser,
        &page,
        &proxy,
        &ws.path("profile-1"),
        &format!("--screenshot={}", png.display()),
    );
    assert!(ok, "chromium failed to render {}", page.display());
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // IHDR: width and height, big-endian, after the signature and the chunk header.
    let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1000, 5200));
    // A blank page compresses to a few kB; this one holds ten charts and tables.
    assert!(
        bytes.len() > 100_000,
        "the render looks empty: {} bytes",
        bytes.len()
    );

    // The DOM after loading: every chart is there with its drawing.
    let (ok, dom) = browse(&browser, &page, &proxy, &ws.path("profile-2"), "--dump-dom");
    assert!(ok);
    for chart in ecrm::report::CHARTS {
        let at = dom
            .find(&format!("data-chart=\"{chart}\""))
            .unwrap_or_else(|| panic!("the rendered page lacks chart {chart}"));
        let figure = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        let marks = figure.matches("<rect").count() + figure.matches("<polyline").count();
        assert!(
            figure.contains("<svg") && marks >= 3,
            "chart {chart} has no drawing"
        );
    }
    let added: Vec<String> = proxy
        .hosts()
        .difference(&baseline.hosts())
        .cloned()
        .collect();
    assert!(
        added.is_empty(),
        "the report made network requests to {added:?}"
    );

    // The check can fail: a page that does fetch shows its host.
    let fetching = ws.path("fetching.html");
    std::fs::write(
        &fetching,
        "<html><body><img src=\"http://ecrm-report-test.example/x.png\"></body></html>",
    )
    .unwrap();
    let control = Proxy::start();
    let _ = browse(
        &browser,
        &fetching,
        &control,
        &ws.path("profile-3"),
        "--dump-dom",
    );
    assert!(
        control.hosts().contains("ecrm-report-test.example"),
        "the proxy did not see a page's request: {:?}",
        control.hosts()
    );
}
