//! Offline subcommands over trace files: `detect`, `eval`, `synth`. The
//! judgement is `migwatch_shared`'s; this module only reads and writes files.

use anyhow::{bail, Context, Result};
use migwatch_shared::detector::{Detector, DetectorConfig, Light, Reason};
use migwatch_shared::eval::{self, Labels};
use migwatch_shared::report::MigrationRecord;
use migwatch_shared::synth::{self, TraceSpec};
use migwatch_shared::trace::{self, Format, TraceReader};
use migwatch_shared::wire::Event;
use serde::Serialize;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// `detect FILE`
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The trace: JSON lines of wire events (`.jsonl`) or CSV with
    /// seq,t_send,rtt_ms (`.csv`); other names are recognised by content.
    /// `-` reads standard input.
    pub file: PathBuf,
    /// Read as this format instead of guessing.
    #[arg(long, value_parser = ["jsonl", "csv"])]
    pub format: Option<String>,
    /// Detector thresholds as JSON, inline ('{"red_hold_ms":5000}') or in a
    /// file: fields of DetectorConfig (docs/DETECTION.md); the rest keep
    /// their defaults.
    #[arg(long, value_name = "JSON|FILE")]
    pub detector_config: Option<String>,
    /// Also print every change of the light as the replay reaches it, one
    /// JSON line each (`{"light":"red","at_s":…,"reasons":[…]}`), before
    /// the events: what the page showed, and when.
    #[arg(long)]
    pub lights: bool,
}

/// `eval DIR`
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Folder of labelled traces: NAME.jsonl or NAME.csv, each with
    /// NAME.labels.json (as written by `synth`).
    pub dir: PathBuf,
    /// Detector thresholds as JSON (see `detect --detector-config`).
    #[arg(long, value_name = "JSON|FILE")]
    pub detector_config: Option<String>,
    /// Print the scores as JSON instead of Markdown tables.
    #[arg(long)]
    pub json: bool,
}

/// `synth DIR`
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Output folder (created if missing).
    pub dir: PathBuf,
    /// Seed: the same seed writes the same traces.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Traces per decoy; migrations get six times as many.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// File format of the traces.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    pub format: String,
}

fn config(arg: Option<&str>) -> Result<DetectorConfig> {
    let Some(arg) = arg else {
        return Ok(DetectorConfig::default());
    };
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    };
    serde_json::from_str(&text).context("--detector-config is not a valid detector config")
}

fn format_arg(f: Option<&str>) -> Option<Format> {
    f.and_then(Format::from_extension)
}

/// The last line `detect` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectSummary {
    /// Migration events printed.
    pub events: usize,
    /// Of which red.
    pub red: usize,
    /// Of which yellow.
    pub yellow: usize,
    /// Samples read.
    pub samples: u64,
    /// Of which lost.
    pub lost: u64,
    /// Late replies read.
    pub late: u64,
    /// Lines of unknown event types skipped.
    pub skipped_lines: u64,
    /// Probe interval in use, ms.
    pub interval_ms: Option<f64>,
    /// Baseline median RTT at the end, ms.
    pub baseline_rtt_ms: Option<f64>,
    /// The light at the end of the trace.
    pub final_light: &'static str,
}

fn secs(us: i64) -> f64 {
    us as f64 / 1e6
}

/// One change of the light, as printed by `detect --lights`.
#[derive(Debug, Serialize)]
struct LightLine {
    light: &'static str,
    /// Event time of the change, s.
    at_s: f64,
    reasons: Vec<Reason>,
}

/// Reads a trace from `input`, runs the detector, and writes one JSON line
/// per migration event and a summary line to `out` (with `lights`, every
/// change of the light first). `format`: `None` guesses from the first
/// meaningful line.
pub fn detect_stream(
    input: impl BufRead,
    format: Option<Format>,
    cfg: DetectorConfig,
    lights: bool,
    out: &mut impl Write,
) -> Result<DetectSummary> {
    let mut det = Detector::new(cfg);
    let mut light = det.light();
    let mut reader: Option<TraceReader> = format.map(TraceReader::new);
    let mut evs: Vec<Event> = Vec::with_capacity(4);
    let (mut samples, mut lost, mut late) = (0u64, 0u64, 0u64);
    let mut lines_before = 0usize;
    for line in input.lines() {
        let line = line.context("cannot read the trace")?;
        let r = match reader.as_mut() {
            Some(r) => r,
            None => {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    lines_before += 1;
                    continue;
                }
                let mut r = TraceReader::new(Format::sniff(t));
                // Keep line numbers right for the skipped blank lines.
                for _ in 0..lines_before {
                    r.feed_line("", &mut evs)?;
                }
                reader.insert(r)
            }
        };
        evs.clear();
        r.feed_line(&line, &mut evs)?;
        for ev in &evs {
            match ev {
                Event::Sample(s) => {
                    samples += 1;
                    lost += u64::from(s.rtt_us.is_none());
                }
                Event::Late(_) => late += 1,
                _ => {}
            }
            det.push(ev);
            if lights && det.light() != light {
                let v = det.verdict();
                light = v.light;
                let line = LightLine {
                    light: light.name(),
                    at_s: secs(det.now_us().unwrap_or_default()),
                    reasons: v.reasons,
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    match &reader {
        Some(r) => r.finish()?,
        None => bail!("the trace is empty"),
    }
    det.finish();
    let mut summary = DetectSummary {
        events: 0,
        red: 0,
        yellow: 0,
        samples,
        lost,
        late,
        skipped_lines: reader.as_ref().map_or(0, |r| r.skipped),
        interval_ms: det.interval_us().map(|i| f64::from(i) / 1000.0),
        baseline_rtt_ms: det.baseline().map(|b| f64::from(b.median_us) / 1000.0),
        final_light: det.light().name(),
    };
    for m in det.migrations() {
        let line = MigrationRecord::from_migration(m);
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        summary.events += 1;
        match m.level {
            Light::Red => summary.red += 1,
            _ => summary.yellow += 1,
        }
    }
    serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": &summary }))?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(summary)
}

/// Runs `detect`.
pub fn run_detect(a: DetectArgs) -> Result<()> {
    let cfg = config(a.detector_config.as_deref())?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.file.as_os_str() == "-" {
        let stdin = std::io::stdin();
        detect_stream(
            stdin.lock(),
            format_arg(a.format.as_deref()),
            cfg,
            a.lights,
            &mut out,
        )
        .context("reading standard input")?;
        return Ok(());
    }
    let format = format_arg(a.format.as_deref()).or_else(|| {
        a.file
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_extension)
    });
    let f = std::fs::File::open(&a.file)
        .with_context(|| format!("cannot open {}", a.file.display()))?;
    detect_stream(std::io::BufReader::new(f), format, cfg, a.lights, &mut out)
        .with_context(|| format!("{}", a.file.display()))?;
    Ok(())
}

/// Scores the detector on every labelled trace in `dir`.
pub fn eval_dir(dir: &Path, cfg: DetectorConfig) -> Result<eval::Summary> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".labels.json")))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!(
            "no labelled traces in {} (expected NAME.labels.json beside NAME.jsonl or NAME.csv; `synth DIR` writes them)",
            dir.display()
        );
    }
    let mut summary = eval::Summary::default();
    for lp in names {
        let labels: Labels = serde_json::from_str(
            &std::fs::read_to_string(&lp)
                .with_context(|| format!("cannot read {}", lp.display()))?,
        )
        .with_context(|| format!("{} is not a labels file", lp.display()))?;
        let stem = lp
            .to_str()
            .and_then(|s| s.strip_suffix(".labels.json"))
            .unwrap_or_default()
            .to_string();
        let trace_path = ["jsonl", "csv"]
            .iter()
            .map(|e| PathBuf::from(format!("{stem}.{e}")))
            .find(|p| p.is_file())
            .with_context(|| format!("no {stem}.jsonl or {stem}.csv for {}", lp.display()))?;
        let text = std::fs::read_to_string(&trace_path)
            .with_context(|| format!("cannot read {}", trace_path.display()))?;
        let format = trace_path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_extension)
            .unwrap_or_else(|| Format::sniff(&text));
        let events =
            trace::read_as(format, &text).with_context(|| format!("{}", trace_path.display()))?;
        summary.add(eval::score(&events, &labels, cfg));
    }
    Ok(summary)
}

/// Runs `eval`.
pub fn run_eval(a: EvalArgs) -> Result<()> {
    let cfg = config(a.detector_config.as_deref())?;
    let summary = eval_dir(&a.dir, cfg)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
        println!(
            "\nbar of issue 4: {}",
            if summary.meets_bar() {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    Ok(())
}

/// Writes one generated trace and its labels into `dir`.
pub fn write_synth(dir: &Path, spec: &TraceSpec, format: Format) -> Result<()> {
    let t = synth::generate(spec);
    let mut text = String::new();
    match format {
        Format::Jsonl => trace::write_jsonl(&t.events, &mut text)?,
        Format::Csv => trace::write_csv(&t.events, &mut text)?,
    }
    let ext = match format {
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
    };
    let path = dir.join(format!("{}.{ext}", spec.name));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let lpath = dir.join(format!("{}.labels.json", spec.name));
    let mut labels = serde_json::to_string_pretty(&t.labels)?;
    labels.push('\n');
    std::fs::write(&lpath, labels).with_context(|| format!("cannot write {}", lpath.display()))?;
    Ok(())
}

/// Runs `synth`.
pub fn run_synth(a: SynthArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let format = format_arg(Some(&a.format)).unwrap_or(Format::Jsonl);
    let specs = synth::suite(a.seed, a.count);
    for spec in &specs {
        write_synth(&a.dir, spec, format)?;
    }
    eprintln!(
        "migwatch-sidecar: wrote {} labelled traces to {} (seed {})",
        specs.len(),
        a.dir.display(),
        a.seed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use migwatch_shared::synth::Scenario;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "migwatch-detect-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A 20 s trace with one 334 ms stop-and-copy and a held reply.
    fn migration_spec() -> TraceSpec {
        let mut spec = TraceSpec::new(
            "m",
            11,
            10_000,
            Scenario::Migration {
                downtime_ms: 334.0,
                held: true,
                loaded: false,
            },
        );
        spec.duration_s = 20.0;
        spec
    }

    fn migration() -> synth::SynthTrace {
        synth::generate(&migration_spec())
    }

    fn run(text: &str, format: Option<Format>) -> Result<(DetectSummary, Vec<serde_json::Value>)> {
        let mut out = Vec::new();
        let s = detect_stream(
            text.as_bytes(),
            format,
            DetectorConfig::default(),
            false,
            &mut out,
        )?;
        let lines = String::from_utf8(out)?
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        Ok((s, lines))
    }

    #[test]
    fn lights_are_printed_as_they_change() {
        let t = migration();
        let mut jsonl = String::new();
        trace::write_jsonl(&t.events, &mut jsonl).unwrap();
        let mut out = Vec::new();
        detect_stream(
            jsonl.as_bytes(),
            None,
            DetectorConfig::default(),
            true,
            &mut out,
        )
        .unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let changes: Vec<&str> = lines.iter().filter_map(|l| l["light"].as_str()).collect();
        // Yellow while silent, red once the outage is recognised, and back
        // (through yellow) to green after the holds.
        assert_eq!(changes.first(), Some(&"yellow"), "{changes:?}");
        assert!(changes.contains(&"red"), "{changes:?}");
        let red = lines.iter().find(|l| l["light"] == "red").unwrap();
        assert!(red["at_s"].as_f64().unwrap() > 1.7e9);
        assert_eq!(red["reasons"][0]["kind"], "loss_burst");
        // Changes come first, then the events and the summary.
        let first_event = lines.iter().position(|l| l.get("level").is_some()).unwrap();
        assert!(lines[..first_event]
            .iter()
            .all(|l| l.get("light").is_some()));
    }

    #[test]
    fn detect_prints_events_then_a_summary_for_both_formats() {
        let t = migration();
        let mut jsonl = String::new();
        trace::write_jsonl(&t.events, &mut jsonl).unwrap();
        let mut csv = String::new();
        trace::write_csv(&t.events, &mut csv).unwrap();
        for (text, fmt) in [(&jsonl, None), (&csv, None), (&csv, Some(Format::Csv))] {
            let (s, lines) = run(text, fmt).unwrap();
            assert_eq!(s.red, 1, "{lines:?}");
            let first = &lines[0];
            assert_eq!(first["level"], "red");
            let d = first["downtime_ms"].as_f64().unwrap();
            assert!((d - 334.0).abs() < 15.0, "{d}");
            assert!(first["start_s"].as_f64().unwrap() > 1.7e9);
            assert_eq!(first["reasons"][0]["kind"], "loss_burst");
            assert!(
                lines.last().unwrap()["summary"]["samples"]
                    .as_u64()
                    .unwrap()
                    > 1000
            );
        }
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = run("seq,t_send,rtt_ms\n1,1.0,0.2\n2,oops,0.2\n", None).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e:#}");
        let e = run(
            "\n{\"type\":\"tick\",\"now_us\":1,\"next_seq\":0}\n{\"type\":\"sample\"}\n",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e:#}");
        assert!(run("", None).is_err());
        assert!(run("# only a comment\n", None).is_err());
    }

    #[test]
    fn synth_then_eval_round_trips_through_files() {
        let dir = tmpdir("eval");
        let t = migration();
        let mut spec = TraceSpec::new("b", 5, 10_000, Scenario::LinkOutage);
        spec.duration_s = 20.0;
        write_synth(&dir, &spec, Format::Csv).unwrap();
        write_synth(&dir, &migration_spec(), Format::Jsonl).unwrap();
        let s = eval_dir(&dir, DetectorConfig::default()).unwrap();
        assert_eq!(s.traces.len(), 2);
        let mig = &s.traces.iter().find(|x| x.name == "m").unwrap().migrations[0];
        assert_eq!(mig.level, Light::Red);
        assert_eq!(t.labels.events.len(), 1);
        assert!(s.table().contains("| link_outage | 1 |"));
        assert!(eval_dir(&dir.join("nope"), DetectorConfig::default()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_json_overrides_defaults() {
        let c = config(Some("{\"red_hold_ms\":5}")).unwrap();
        assert_eq!(c.red_hold_ms, 5);
        assert_eq!(c.min_burst, DetectorConfig::default().min_burst);
        assert!(config(Some("{\"red_hold_ms\":-1}")).is_err());
    }
}
