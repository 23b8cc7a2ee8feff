//! The sidecar's `/overview` for the targets without a live stream: their
//! lights, reasons and per-second sparklines in one request per sidecar
//! per poll, and the sparkline as inline SVG. Plain Rust, unit tested.

use crate::json;
use migwatch_shared::Light;

/// How often `/overview` is asked for, ms: once a second, as
/// `docs/PROTOCOL.md` suggests (its buckets are whole seconds).
pub const OVERVIEW_POLL_MS: u32 = 1_000;

/// Seconds of sparkline asked for: the tiles' canvases show 30 s too.
pub const OVERVIEW_SECONDS: u32 = 30;

/// One reason, by its kind only: its fields would need every detector
/// reason's decoder in the page (~20 KB of wasm) for a tile's few words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonKind {
    /// `loss_burst`, `rtt_peak`, …
    pub kind: String,
}

/// The fields the page reads of `shared::report::TargetSummary`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOverview {
    /// The target's name.
    pub name: String,
    /// `green`, `yellow` or `red`.
    pub light: String,
    /// Why, when not green.
    pub reasons: Vec<ReasonKind>,
    /// Mean RTT of each second's answered probes, µs, oldest first.
    pub rtt_us: Vec<Option<u32>>,
    /// Probes lost in each second.
    pub lost: Vec<u32>,
    /// Migrations the sidecar found so far.
    pub migrations: u64,
}

/// `GET /overview`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// One summary per target.
    pub targets: Vec<TargetOverview>,
}

impl Overview {
    /// Decodes `/overview`'s answer (`json`'s rules: a missing `name` or
    /// `light` fails it; `reasons`, `rtt_us`, `lost`, `migrations` default
    /// to empty and 0).
    pub fn from_json(text: &str) -> Result<Overview, json::Error> {
        let v = json::parse(text)?;
        let targets = json::items(&v, "targets", TargetOverview::from_value)?;
        Ok(Overview { targets })
    }
}

impl TargetOverview {
    fn from_value(v: &json::Value) -> Result<TargetOverview, json::Error> {
        let kind = |r: &json::Value| json::string(r, "kind").ok().map(|kind| ReasonKind { kind });
        let rtt = |r: &json::Value| match r {
            json::Value::Null => Some(None),
            r => json::as_u32(r).map(Some),
        };
        Ok(TargetOverview {
            name: json::string(v, "name")?,
            light: json::string(v, "light")?,
            reasons: json::list(v, "reasons", kind)?,
            rtt_us: json::list(v, "rtt_us", rtt)?,
            lost: json::list(v, "lost", json::as_u32)?,
            migrations: match json::get(v, "migrations") {
                None => 0,
                Some(n) => n.as_u64().ok_or("field `migrations`: expected a count")?,
            },
        })
    }
}

/// A parked target's tile: the sidecar's light, its reasons in words and
/// the sparkline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    /// The sidecar's light (`None`: it sent none we know).
    pub light: Option<Light>,
    /// Its reasons in a few words each (`RTT peak`, `probes lost`).
    pub reasons: Vec<String>,
    /// The sparkline, `None` from `/metrics` (lights only).
    pub spark: Option<Spark>,
    /// Migrations the sidecar found.
    pub migrations: u64,
}

/// A per-second sparkline as SVG shapes in a [`SPARK_W`] × [`SPARK_H`] box.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spark {
    /// `polyline` points of the mean RTT, one run per stretch of answered
    /// seconds (a second without answers breaks the line).
    pub lines: Vec<String>,
    /// `path` data of a bar at each second with lost probes.
    pub lost: String,
    /// Seconds drawn.
    pub seconds: usize,
    /// Seconds with lost probes.
    pub lost_seconds: usize,
    /// The highest RTT drawn (the top of the box), `12.3 ms`.
    pub top: String,
}

/// The SVG box's width (a `viewBox` unit per half second of 60).
pub const SPARK_W: u32 = 120;
/// The SVG box's height.
pub const SPARK_H: u32 = 32;

impl Spark {
    /// The whole sparkline as an `<svg>` element's text (one DOM write
    /// instead of a component per line: lighter on the page's weight).
    pub fn svg(&self) -> String {
        let mut s = format!(
            "<svg viewBox=\"0 0 {SPARK_W} {SPARK_H}\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><path class=\"spark-lost\" d=\"{}\"/>",
            self.lost
        );
        for l in &self.lines {
            s.push_str(&format!("<polyline class=\"spark-rtt\" points=\"{l}\"/>"));
        }
        s.push_str("</svg>");
        s
    }
}

/// `light` as the wire says it.
fn light_of(s: &str) -> Option<Light> {
    match s {
        "green" => Some(Light::Green),
        "yellow" => Some(Light::Yellow),
        "red" => Some(Light::Red),
        _ => None,
    }
}

/// A reason kind in a few words, as the tiles say them.
pub fn kind_words(kind: &str) -> String {
    match kind {
        "loss_burst" => "probes lost".into(),
        "silence" => "no reply yet".into(),
        "rtt_peak" => "RTT peak".into(),
        "late_reply" => "a late reply".into(),
        "clock_step" => "guest clock stepped".into(),
        "clock_steady" => "guest clock ran on".into(),
        "announce" => "MAC announced".into(),
        "queue_flush" => "queue released".into(),
        "long_outage" => "long outage".into(),
        other => other.replace('_', " "),
    }
}

/// Each target's name and [`Remote`], in the sidecar's order (a list: one
/// more map type costs the page weight).
pub fn remotes(o: &Overview) -> Vec<(String, Remote)> {
    o.targets
        .iter()
        .map(|t| {
            let mut reasons: Vec<String> = Vec::new();
            for r in &t.reasons {
                let w = kind_words(&r.kind);
                if !reasons.contains(&w) {
                    reasons.push(w);
                }
            }
            let r = Remote {
                light: light_of(&t.light),
                reasons,
                spark: Some(spark(&t.rtt_us, &t.lost)),
                migrations: t.migrations,
            };
            (t.name.clone(), r)
        })
        .collect()
}

/// The sidecar's lights from `/metrics` (an older sidecar without
/// `/overview`): no reasons, no sparkline.
pub fn remotes_from_lights(lights: Vec<(String, Light)>) -> Vec<(String, Remote)> {
    lights
        .into_iter()
        .map(|(n, l)| {
            (
                n,
                Remote {
                    light: Some(l),
                    ..Remote::default()
                },
            )
        })
        .collect()
}

/// The [`Remote`] of target `name` in `list`.
pub fn find<'a>(list: &'a [(String, Remote)], name: &str) -> Option<&'a Remote> {
    list.iter().find(|(n, _)| n == name).map(|(_, r)| r)
}

/// Draws one value per second across the box, newest at the right edge;
/// RTT from 0 (bottom) to the highest (top), lost seconds as full-height
/// bars.
pub fn spark(rtt_us: &[Option<u32>], lost: &[u32]) -> Spark {
    let n = rtt_us.len().max(lost.len());
    let top = rtt_us.iter().flatten().copied().max().unwrap_or(0).max(1);
    let step = f64::from(SPARK_W) / (n.max(2) - 1) as f64;
    let h = f64::from(SPARK_H);
    let x = |i: usize| i as f64 * step;
    let mut lines = Vec::new();
    let mut cur = String::new();
    for (i, r) in rtt_us.iter().enumerate() {
        match r {
            Some(v) => {
                let y = h - 1.0 - (f64::from(*v) / f64::from(top)) * (h - 2.0);
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(&format!("{:.1},{y:.1}", x(i)));
            }
            None if !cur.is_empty() => lines.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    let mut path = String::new();
    let mut lost_seconds = 0;
    for (i, l) in lost.iter().enumerate() {
        if *l > 0 {
            lost_seconds += 1;
            path.push_str(&format!("M{:.1} 0V{h:.0}", x(i)));
        }
    }
    Spark {
        lines,
        lost: path,
        seconds: n,
        lost_seconds,
        top: crate::format::duration(u64::from(top)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"at_s":1796454075.43,"targets":[
        {"name":"web-1","light":"green","reasons":[],"first_s":1796454071,
         "rtt_us":[8,8,9,null,9],"lost":[0,0,0,12,0],"migrations":0,"last_event":null},
        {"name":"db-2","light":"yellow","reasons":[
            {"kind":"rtt_peak","max_rtt_us":30000,"baseline_us":250,"probes":9,"start_us":1,"end_us":2},
            {"kind":"future_kind","x":1}],
         "first_s":1796454071,"rtt_us":[],"lost":[],"migrations":2,
         "last_event":{"start_s":1.5,"end_s":2.0,"downtime_ms":40.0,"downtime_from":"late_reply",
            "level":"red","decided_s":2.1,"reasons":[],"verdict":"migrated","explanation":"x"}}]}"#;

    #[test]
    fn the_protocols_example_decodes_with_kinds_only() {
        let o = Overview::from_json(BODY).expect("decodes");
        let r = remotes(&o);
        let web = find(&r, "web-1").expect("web-1");
        assert_eq!(web.light, Some(Light::Green));
        assert!(web.reasons.is_empty());
        let s = web.spark.as_ref().expect("a sparkline");
        assert_eq!((s.seconds, s.lost_seconds), (5, 1));
        assert_eq!(s.lines.len(), 2, "the lost second breaks the line: {s:?}");
        assert_eq!(s.lost, "M90.0 0V32");
        let db = find(&r, "db-2").expect("db-2");
        assert_eq!(db.light, Some(Light::Yellow));
        assert_eq!(db.reasons, vec!["RTT peak", "future kind"]);
        assert_eq!(db.migrations, 2);
    }

    #[test]
    fn the_sidecars_own_overview_decodes() {
        let full = migwatch_shared::report::Overview {
            at_s: 1.0,
            targets: vec![migwatch_shared::report::TargetSummary {
                name: "a".into(),
                light: "red".into(),
                reasons: vec![migwatch_shared::Reason::LongOutage { duration_us: 9 }],
                first_s: 1,
                rtt_us: vec![Some(5), None],
                lost: vec![0, 3],
                migrations: 1,
                last_event: None,
            }],
        };
        let text = serde_json::to_string(&full).expect("json");
        let o = Overview::from_json(&text).expect("decodes");
        let r = remotes(&o);
        assert_eq!(r[0].1.light, Some(Light::Red));
        assert_eq!(r[0].1.reasons, vec!["long outage"]);
    }

    #[test]
    fn the_sparkline_spans_the_box_with_the_highest_rtt_on_top() {
        let s = spark(&[Some(100), Some(200), Some(50)], &[0, 0, 0]);
        assert_eq!(s.lines, vec!["0.0,16.0 60.0,1.0 120.0,23.5"]);
        assert_eq!(s.top, "0.20 ms");
        assert!(s.lost.is_empty());
        assert_eq!(
            s.svg(),
            "<svg viewBox=\"0 0 120 32\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><path class=\"spark-lost\" d=\"\"/><polyline class=\"spark-rtt\" points=\"0.0,16.0 60.0,1.0 120.0,23.5\"/></svg>"
        );
        let empty = spark(&[], &[]);
        assert!(empty.lines.is_empty());
        assert_eq!(empty.seconds, 0);
    }

    #[test]
    fn metrics_lights_have_no_sparkline() {
        let r = remotes_from_lights(vec![("a".to_string(), Light::Yellow)]);
        assert_eq!(find(&r, "a").and_then(|x| x.light), Some(Light::Yellow));
        assert!(find(&r, "a").is_some_and(|x| x.spark.is_none()));
    }
}
