//! One sidecar watching 20 targets, on the real page: 20 tiles from one
//! URL, the tiles without a live stream drawn from one `/overview` a
//! second, an outage on one target turns only its tile yellow (and sorts
//! it first), the filter narrows the grid (and is in the URL), two tiles'
//! overlay toggles put both on the detail chart, a click opens the
//! target's full view.

use crate::app_common::dist;
use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::fleet::FleetNs;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, wait_for};
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// Every tile: `(name, light, conn, visible, order)`.
const READ_GRID: &str = "
    return Array.from(document.querySelectorAll('#tiles .tile')).map(t => [
        t.dataset.name || '', t.dataset.light || '', t.dataset.conn || '',
        !t.hidden && t.offsetParent !== null, Number(getComputedStyle(t).order)]);
";

/// `[parked tiles, of them with the sidecar's sparkline, /overview
/// requests, /metrics requests]`.
const PARKED: &str = "
    const ts = Array.from(document.querySelectorAll('#tiles .tile[data-conn=limited]'));
    const spark = ts.filter(t => t.dataset.remote === 'overview'
        && t.querySelector('.spark-remote polyline')).length;
    const res = performance.getEntriesByType('resource').map(e => e.name);
    return [ts.length, spark, res.filter(n => n.includes('/overview')).length,
        res.filter(n => n.includes('/metrics')).length];
";

#[derive(Debug, Clone)]
struct Tile {
    name: String,
    light: String,
    conn: String,
    visible: bool,
    order: i64,
}

fn grid(b: &Browser) -> Vec<Tile> {
    let Ok(Value::Array(rows)) = b.eval(READ_GRID) else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| {
            Some(Tile {
                name: r.get(0)?.as_str()?.to_string(),
                light: r.get(1)?.as_str()?.to_string(),
                conn: r.get(2)?.as_str()?.to_string(),
                visible: r.get(3)?.as_bool()?,
                order: r.get(4)?.as_i64()?,
            })
        })
        .collect()
}

fn set_filter(b: &Browser, q: &str) -> anyhow::Result<()> {
    let js = format!(
        "const f = document.getElementById('filter');
         f.value = {}; f.dispatchEvent(new Event('input', {{bubbles: true}})); return 1;",
        serde_json::to_string(q)?
    );
    b.eval(&js)?;
    Ok(())
}

#[test]
fn page_fleet_twenty_targets_one_outage_turns_only_its_tile_yellow_and_the_filter_works(
) -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let mut f = FleetNs::create(20)?;
    let dir = out_dir().join(format!("app-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut toml = String::new();
    for i in 0..20 {
        let _ = write!(
            toml,
            "[[target]]\naddress = \"{}\"\nname = \"vm-{i:02}\"\nlabels = {{ rack = \"r{}\" }}\ninterval = \"100ms\"\n\n",
            f.address(i),
            i % 2
        );
    }
    let file = dir.join("targets.toml");
    std::fs::write(&file, toml)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let path = file.to_string_lossy().to_string();
    let sc = Sidecar::start_with(
        "app-fleet",
        &[
            "--targets-file",
            &path,
            "--timeout",
            "300ms",
            "--web-root",
            &dist,
        ],
    )?;
    let b = Browser::start(1440, 900, false)?;
    // The page's own origin is the sidecar: no ?s= at all.
    b.goto(&format!("{}/", sc.base))?;

    let all_green = wait_for(
        "20 green tiles",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let g = grid(&b);
            (g.len() == 20 && g.iter().all(|t| t.light == "green")).then_some(g)
        },
    )
    .map_err(|e| {
        let _ = b.screenshot(&out_dir().join("app-fleet-start-failed.png"));
        anyhow::anyhow!("{e}: {:?}", grid(&b))
    })?;
    // Five stream (the browser's connection limit); the others show the
    // sidecar's own light, and say so.
    let live = all_green.iter().filter(|t| t.conn == "live").count();
    let limited = all_green.iter().filter(|t| t.conn == "limited").count();
    assert_eq!((live, limited), (5, 15), "{all_green:?}");
    // The parked tiles read the sidecar's /overview, one request a second
    // for all of them, and draw its per-second sparkline; /metrics is not
    // asked at all.
    let parked = wait_for(
        "the parked tiles' sparklines",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let v = b.eval(PARKED).ok()?;
            let n = v.get(0)?.as_u64()?;
            let with_spark = v.get(1)?.as_u64()?;
            (n == 15 && with_spark == 15).then_some(v)
        },
    )?;
    assert_eq!(parked[3].as_u64(), Some(0), "no /metrics: {parked}");
    let overviews = parked[2].as_u64().unwrap_or(0);
    assert!(overviews >= 1, "{parked}");
    std::thread::sleep(Duration::from_secs(3));
    let later = b.eval(PARKED)?;
    let more = later[2].as_u64().unwrap_or(0) - overviews;
    assert!(
        (1..=6).contains(&more),
        "about one /overview a second for all 15 parked tiles, not one each: {more} in 3 s"
    );
    let url = b.eval("return location.search")?;
    assert!(
        url.as_str().is_some_and(|u| !u.contains("vm-")),
        "the URL names sidecars, not targets: {url}"
    );
    b.screenshot(&out_dir().join("app-fleet-grid.png"))?;

    // An outage on vm-13 (no stream: its light comes from the sidecar),
    // then on vm-02 (streamed: the page's own detector).
    for victim in [13usize, 2] {
        let name = format!("vm-{victim:02}");
        f.remove(f.address(victim))?;
        let g = wait_for(
            &format!("{name} to turn yellow"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                let g = grid(&b);
                g.iter()
                    .any(|t| t.name == name && t.light == "yellow")
                    .then_some(g)
            },
        )?;
        let others: Vec<&Tile> = g
            .iter()
            .filter(|t| t.name != name && t.light != "green")
            .collect();
        assert!(others.is_empty(), "only {name} may leave green: {others:?}");
        // Worst first.
        let first = g.iter().min_by_key(|t| t.order).map(|t| t.name.clone());
        assert_eq!(first.as_deref(), Some(name.as_str()), "{g:?}");
        if victim == 13 {
            // Its sparkline (the sidecar's) shows the lost seconds.
            wait_for(
                "vm-13's sparkline to show lost probes",
                Duration::from_secs(10),
                Duration::from_millis(100),
                || {
                    b.eval(
                        "const t = Array.from(document.querySelectorAll('#tiles .tile'))
                            .find(t => t.dataset.name === 'vm-13');
                         const s = t && t.querySelector('.spark-remote');
                         return s ? Number(s.dataset.lostSeconds) : null;",
                    )
                    .ok()?
                    .as_u64()
                    .filter(|n| *n > 0)
                },
            )?;
        }
        b.screenshot(&out_dir().join(format!("app-fleet-outage-{name}.png")))?;
        f.add(f.address(victim))?;
        wait_for(
            &format!("{name} back to green"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                grid(&b)
                    .iter()
                    .any(|t| t.name == name && t.light == "green")
                    .then_some(())
            },
        )?;
    }

    // The filter: by name, by label; it is in the URL.
    set_filter(&b, "vm-1")?;
    let g = wait_for(
        "the name filter",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let g = grid(&b);
            (g.iter().filter(|t| t.visible).count() == 10).then_some(g)
        },
    )?;
    assert!(
        g.iter()
            .filter(|t| t.visible)
            .all(|t| t.name.starts_with("vm-1")),
        "{g:?}"
    );
    let url = b.eval("return location.search")?;
    assert!(url.as_str().is_some_and(|u| u.contains("q=vm-1")), "{url}");
    set_filter(&b, "rack=r1 vm-0")?;
    let g = wait_for(
        "the label filter",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let g = grid(&b);
            (g.iter().filter(|t| t.visible).count() == 5).then_some(g)
        },
    )?;
    let odd: Vec<&str> = g
        .iter()
        .filter(|t| t.visible)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(odd, vec!["vm-01", "vm-03", "vm-05", "vm-07", "vm-09"]);
    b.screenshot(&out_dir().join("app-fleet-filtered.png"))?;

    // Two tiles' overlay toggles: pressed, and in the URL in click order.
    for n in ["vm-01", "vm-09"] {
        b.eval(&format!(
            "Array.from(document.querySelectorAll('#tiles .tile'))
                .find(t => t.dataset.name === '{n}').querySelector('.overlay').click();
             return 1;"
        ))?;
    }
    let pressed = b.eval(
        "return Array.from(document.querySelectorAll('#tiles .tile .overlay[aria-pressed=true]'))
            .map(x => x.closest('.tile').dataset.name).sort().join(',')",
    )?;
    assert_eq!(pressed.as_str(), Some("vm-01,vm-09"));
    let url = b.eval("return location.search")?;
    assert!(
        url.as_str()
            .is_some_and(|u| u.contains("overlay=vm-01,vm-09")),
        "{url}"
    );

    // One click opens a target's full view, with a live stream of its own.
    b.eval(
        "Array.from(document.querySelectorAll('#tiles .tile'))
            .find(t => t.dataset.name === 'vm-09').querySelector('.tile-title').click();
         return 1;",
    )?;
    let name = wait_for(
        "vm-09's full view",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let v = b
                .eval(
                    "const d = document.getElementById('detail');
                     const t = Array.from(document.querySelectorAll('#tiles .tile'))
                        .find(t => t.dataset.name === 'vm-09');
                     return d && !d.hidden && t.dataset.conn === 'live' && t.dataset.light === 'green'
                        ? document.getElementById('target-name').textContent : null;",
                )
                .ok()?;
            v.as_str().map(String::from)
        },
    )?;
    assert_eq!(name, "vm-09");
    // The detail chart overlays the two picked targets; taking one off
    // brings back the shown target's own chart.
    let overlay_of = || {
        b.eval(
            "const c = document.getElementById('chart'); return c ? c.dataset.overlay || '' : null",
        )
        .ok()
        .and_then(|v| v.as_str().map(String::from))
    };
    wait_for(
        "the overlay of vm-01 and vm-09",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || overlay_of().filter(|o| o == "vm-01,vm-09"),
    )?;
    b.screenshot(&out_dir().join("app-fleet-overlay.png"))?;
    b.eval(
        "Array.from(document.querySelectorAll('#tiles .tile'))
            .find(t => t.dataset.name === 'vm-01').querySelector('.overlay').click();
         return 1;",
    )?;
    wait_for(
        "the overlay to end",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || overlay_of().filter(|o| o.is_empty()),
    )?;
    b.screenshot(&out_dir().join("app-fleet-detail.png"))?;
    Ok(())
}
