//! Page performance in real Chromium: chart frame time with an hour at
//! 100 Hz (360 k points) in the 1 h window, the detector's throughput in
//! wasm, the render time of a 100-target grid fed at 10 Hz, and the
//! shipped page's weight. Figures go to `tests/out/page-bench.json`
//! (recorded in docs/BENCHMARKS.md, "Page" and "Detector in wasm"). The
//! hooks live only in the `bench` build (`dist-bench/`); the weight is the
//! shipped `dist/`'s.

use crate::app_common::{bench_dist, dist, open_page};
use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::out_dir;
use migwatch_tests::sidecar::Sidecar;
use serde_json::{json, Value};
use std::time::Duration;

/// Gzip size (-9) of a file, through the system's gzip.
fn gzip_size(path: &std::path::Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("gzip")
        .args(["-9c"])
        .arg(path)
        .output()?;
    anyhow::ensure!(out.status.success(), "gzip failed on {}", path.display());
    Ok(out.stdout.len() as u64)
}

/// The page's weight budget: wasm + js, `gzip -9` (issue 15).
const PAGE_BUDGET_BYTES: u64 = 250 * 1024;

/// A ratchet under the budget: the weight at the end of session 5's
/// page-weight work (244 672 B, 2026-12-05, see docs/BENCHMARKS.md "Page
/// weight") plus 1 % for toolchain noise. A change that makes the page
/// heavier must lower something else first.
const PAGE_CEILING_BYTES: u64 = 247_119;

/// The shipped page's weight: its wasm and js files, each `gzip -9`.
fn page_weight(dist: &str) -> anyhow::Result<u64> {
    let mut weight = 0;
    for e in std::fs::read_dir(dist)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "wasm" || x == "js") {
            weight += gzip_size(&p)?;
        }
    }
    Ok(weight)
}

/// The budget on its own: needs only the built `dist/` (no root, no
/// browser), so it fails fast wherever the page is built.
#[test]
fn page_weight_within_budget() -> anyhow::Result<()> {
    let weight = page_weight(&dist())?;
    println!("page weight: {weight} B gzip (budget {PAGE_BUDGET_BYTES} B)");
    assert!(
        weight <= PAGE_BUDGET_BYTES,
        "page weight {weight} B gzip is over its {PAGE_BUDGET_BYTES} B budget \
         (docs/BENCHMARKS.md, \"Page\", says how to find what grew)"
    );
    Ok(())
}

/// The page must not grow past today's weight (well under the budget).
#[test]
fn page_weight_does_not_grow() -> anyhow::Result<()> {
    let weight = page_weight(&dist())?;
    println!("page weight: {weight} B gzip (ceiling {PAGE_CEILING_BYTES} B, budget {PAGE_BUDGET_BYTES} B)");
    assert!(
        weight <= PAGE_CEILING_BYTES,
        "page weight {weight} B gzip grew past {PAGE_CEILING_BYTES} B \
         (docs/BENCHMARKS.md, \"Page weight\", says how to find what grew)"
    );
    Ok(())
}

#[test]
fn page_bench_chart_frame_time_detector_throughput_and_weight() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let weight = page_weight(&dist)?;
    let bench = bench_dist();
    let sc = Sidecar::start("127.0.0.1", &["--interval", "10ms", "--web-root", &bench])?;
    let b = Browser::start(1280, 800, false)?;
    open_page(&b, &sc.base)?;
    let run = |js: &str| -> anyhow::Result<Value> {
        let s = b.eval(js)?;
        Ok(serde_json::from_str(s.as_str().unwrap_or("{}"))?)
    };
    // First (the wasm memory only grows, so the figure is the fleet's):
    // 100 targets at 10 Hz in the grid, 30 s of renders after 5 s to
    // settle.
    b.eval("migwatchBench.fleet(100); return 1;")?;
    // Fixed measurement windows: nothing to await, time is the measure.
    std::thread::sleep(Duration::from_secs(5));
    run("return migwatchBench.frames()")?;
    std::thread::sleep(Duration::from_secs(30));
    let fleet = run("return migwatchBench.frames()")?;
    let tiles = b.eval("return document.querySelectorAll('#tiles .tile').length")?;
    b.screenshot(&out_dir().join("app-bench-fleet.png"))?;
    // Warm up, then measure.
    run("return migwatchBench.chart(360000, 3)")?;
    let chart = run("return migwatchBench.chart(360000, 60)")?;
    run("return migwatchBench.detector(200000)")?;
    let det = run("return migwatchBench.detector(3000000)")?;
    let report = json!({
        "page_gzip_bytes": weight,
        "chart": chart,
        "detector": det,
        "fleet_100_at_10hz": fleet,
    });
    std::fs::write(
        out_dir().join("page-bench.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    assert_eq!(chart["held"], 360_000, "{chart}");
    let mean = chart["frame_ms"]["mean"].as_f64().unwrap_or(f64::MAX);
    // Generous bound so a loaded CI machine does not fail it; the goal
    // (8 ms) is checked by reading the recorded figures.
    assert!(mean < 50.0, "chart frame {mean} ms");
    assert!(det["samples_per_s"].as_f64().unwrap_or(0.0) > 1e5, "{det}");
    // The weight is recorded here and checked by
    // `page_weight_within_budget`, so an overweight page does not hide
    // these timings.
    assert_eq!(tiles.as_u64(), Some(101), "{tiles}");
    // At 60 frames a second, 30 s give some 1 800 renders; a throttled
    // machine gives fewer, never none.
    assert!(fleet["renders"].as_u64().unwrap_or(0) > 300, "{fleet}");
    let fleet_mean = fleet["render_ms"]["mean"].as_f64().unwrap_or(f64::MAX);
    // Goal 8 ms; generous here for a loaded CI machine, as above.
    assert!(fleet_mean < 30.0, "fleet render {fleet_mean} ms");
    Ok(())
}
