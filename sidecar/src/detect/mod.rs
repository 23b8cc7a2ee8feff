//! Offline subcommands over trace files: `detect`, `eval`, `synth`. The
//! judgement is `migwatch_shared`'s; this module only reads and writes files.

use anyhow::{bail, Context, Result};
use migwatch_shared::detector::{Detector, DetectorConfig, EventVerdict, Light, Reason};
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
    /// Whether the sidecar watched for layer-2 announces while the trace
    /// was recorded (then a missing announce tells a pause from a move).
    /// Default: what the trace's info record says (`capture_iface`), else
    /// off until an announce is seen.
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub announce_channel: Option<String>,
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
    /// Which set: `standard` (migrations and every decoy, echo only),
    /// `offsets` (stops and link cuts at five sampling offsets, echo only;
    /// `--count` repeats), `mild` (the offsets sweep's loaded stops and
    /// cuts on a host loaded 2–8 × its quiet level), `jitter` (the offsets
    /// sweep on a path as jittery as the lab's) or `channels` (migrations,
    /// pauses and path outages with the clock and announce channels).
    #[arg(long, default_value = "standard", value_parser = ["standard", "offsets", "mild", "jitter", "channels"])]
    pub suite: String,
}

fn config(arg: Option<&str>) -> Result<DetectorConfig> {
    let Some(arg) = arg else {
        return Ok(DetectorConfig::default());
    };
    let (text, what) = if arg.trim_start().starts_with('{') {
        (arg.to_string(), "--detector-config".to_string())
    } else {
        (
            std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?,
            format!("--detector-config {arg}"),
        )
    };
    serde_json::from_str(&text).with_context(|| {
        format!("{what} is not a valid detector config (fields in docs/DETECTION.md)")
    })
}

/// Options of a `detect` run besides the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectOptions {
    /// Print every change of the light.
    pub lights: bool,
    /// Overrides the announce channel (else the trace's info record).
    pub announce_channel: Option<bool>,
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
    /// Events by verdict.
    pub migrated: usize,
    /// Paused in place.
    pub paused: usize,
    /// Path outages.
    pub path_outage: usize,
    /// Undecided.
    pub undecided: usize,
    /// Another machine at the address (a new MAC announced it).
    pub replaced: usize,
    /// Whether the announce channel was live (info record, flag, or an
    /// announce seen).
    pub announce_channel: bool,
    /// The first line out of order or repeated, if any (also warned on
    /// standard error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
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
/// meaningful line. Every read or decode error names its line.
pub fn detect_stream(
    mut input: impl BufRead,
    format: Option<Format>,
    cfg: DetectorConfig,
    opts: DetectOptions,
    out: &mut impl Write,
) -> Result<DetectSummary> {
    let mut det = Detector::new(cfg);
    if let Some(on) = opts.announce_channel {
        det.set_announce_channel(on);
    }
    let mut info_applied = false;
    let mut light = det.light();
    let mut reader: Option<TraceReader> = format.map(TraceReader::new);
    let mut evs: Vec<Event> = Vec::with_capacity(4);
    let (mut samples, mut lost, mut late) = (0u64, 0u64, 0u64);
    let mut lines_before = 0usize;
    let mut buf = Vec::with_capacity(256);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        line_no += 1;
        let n = input
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("line {line_no}: cannot read the trace"))?;
        if n == 0 {
            break;
        }
        let line = std::str::from_utf8(&buf).map_err(|e| {
            anyhow::anyhow!(
                "line {line_no}: not valid UTF-8 (byte {} of the line)",
                e.valid_up_to() + 1
            )
        })?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
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
        r.feed_line(line, &mut evs)?;
        if !info_applied {
            if let Some(info) = r.info() {
                det.apply_info(info);
                if let Some(on) = opts.announce_channel {
                    det.set_announce_channel(on);
                }
                info_applied = true;
            }
        }
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
            if opts.lights && det.light() != light {
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
    // Nothing but blank lines and comments reads as an empty trace of
    // the format asked for (JSON lines when none was), with the same error.
    let reader = reader.unwrap_or_else(|| {
        let mut r = TraceReader::new(format.unwrap_or(Format::Jsonl));
        for _ in 0..lines_before {
            let _ = r.feed_line("", &mut evs);
        }
        r
    });
    reader.finish()?;
    det.finish();
    let warning = reader
        .disorder()
        .map(|d| format!("line {}: {}", d.line, d.what));
    let mut summary = DetectSummary {
        events: 0,
        red: 0,
        yellow: 0,
        samples,
        lost,
        late,
        skipped_lines: reader.skipped,
        interval_ms: det.interval_us().map(|i| f64::from(i) / 1000.0),
        baseline_rtt_ms: det.baseline().map(|b| f64::from(b.median_us) / 1000.0),
        final_light: det.light().name(),
        migrated: 0,
        paused: 0,
        path_outage: 0,
        undecided: 0,
        replaced: 0,
        announce_channel: det.announce_channel(),
        warning,
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
        match m.verdict {
            EventVerdict::Migrated => summary.migrated += 1,
            EventVerdict::Paused => summary.paused += 1,
            EventVerdict::PathOutage => summary.path_outage += 1,
            EventVerdict::Undecided => summary.undecided += 1,
            EventVerdict::Replaced => summary.replaced += 1,
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
    let opts = DetectOptions {
        lights: a.lights,
        announce_channel: a.announce_channel.as_deref().map(|v| v == "on"),
    };
    let warn = |what: &str, s: &DetectSummary| {
        if let Some(w) = &s.warning {
            eprintln!("migwatch-sidecar: warning: {what} {w} (out of order or repeated; the judgement may differ from the live run's)");
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.file.as_os_str() == "-" {
        let stdin = std::io::stdin();
        let s = detect_stream(
            stdin.lock(),
            format_arg(a.format.as_deref()),
            cfg,
            opts,
            &mut out,
        )
        .context("standard input")?;
        warn("standard input", &s);
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
    let s = detect_stream(std::io::BufReader::new(f), format, cfg, opts, &mut out)
        .with_context(|| format!("{}", a.file.display()))?;
    warn(&a.file.display().to_string(), &s);
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
        let t = trace::read_trace_as(format, &text)
            .with_context(|| format!("{}", trace_path.display()))?;
        summary.add(eval::score_with_info(
            &t.events,
            &labels,
            cfg,
            t.info.as_ref(),
        ));
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
        Format::Jsonl => {
            if let Some(i) = &t.info {
                text.push_str(&trace::info_line(i));
                text.push('\n');
            }
            trace::write_jsonl(&t.events, &mut text)?
        }
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
    let specs = match a.suite.as_str() {
        "offsets" => synth::offsets(a.seed, a.count),
        "mild" => synth::mild(a.seed, a.count),
        "jitter" => synth::jitter(a.seed, a.count),
        "channels" => synth::channels(a.seed, a.count),
        _ => synth::suite(a.seed, a.count),
    };
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
mod tests;
