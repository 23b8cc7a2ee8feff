//! Command-line flags. Every flag is data in one struct, parsed by clap, and
//! checked once here so the rest of the program gets valid values.

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Probe one target with ICMP echo and stream every sample as Server-Sent
/// Events, with the migwatch page at /. Subcommands work on trace files
/// offline.
#[derive(Debug, Parser)]
#[command(
    name = "migwatch-sidecar",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    args_override_self = true
)]
pub struct Cli {
    /// Offline tools; without one, the sidecar probes and serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The sidecar's flags.
    #[command(flatten)]
    pub serve: Args,
}

/// The offline subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a trace (JSON lines of wire events, or CSV with seq,t_send,rtt_ms)
    /// and print the detected migrations as JSON lines, then a summary line.
    Detect(crate::detect::DetectArgs),
    /// Score the detector on a folder of labelled traces.
    Eval(crate::detect::EvalArgs),
    /// Write seeded synthetic labelled traces (migrations and decoys).
    Synth(crate::detect::SynthArgs),
    /// Probe and detect in the foreground, printing each migration (and
    /// outage) as a JSON line as it is detected: what a migration test
    /// pipeline calls instead of `ping`.
    Watch(crate::watch::WatchArgs),
}

/// Flags of the probing sidecar.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A TOML file with any of these flags as keys (`interval = "10ms"`,
    /// `allow-origin = ["http://192.0.2.10:8080"]`); flags given on the
    /// command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// An IPv4 address to watch (repeatable). Fixed for the life of the
    /// process: no request can change it. Its name is the address.
    #[arg(long, value_name = "ADDR", value_parser = parse_target, required_unless_present = "targets_file")]
    pub target: Vec<Ipv4Addr>,

    /// A TOML file of `[[target]]` entries (address, and optionally name,
    /// labels, interval, clock_interval, timeout); the flags below are
    /// their defaults. SIGHUP re-reads it: added targets start, removed
    /// ones stop, unchanged ones go on.
    #[arg(long, value_name = "FILE")]
    pub targets_file: Option<PathBuf>,

    /// Time between probes, from 50us (20 kHz) to 10s (units: us, ms, s, m).
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_interval)]
    pub interval: Duration,

    /// How long a probe waits for its reply before it counts as lost; a
    /// later reply is still reported, as `late`.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Time between ICMP Timestamp probes that read the target's clock (a
    /// migration makes it lag by the downtime), or `off`.
    #[arg(long, value_name = "DURATION|off", default_value = "200ms", value_parser = parse_clock_interval)]
    pub clock_interval: ClockEvery,

    /// Watch this interface for the target's layer-2 announces (RARP,
    /// gratuitous ARP) after a move; it must be on the target's segment.
    #[arg(long, value_name = "IFACE")]
    pub capture_iface: Option<String>,

    /// How the probe thread is scheduled, so serving clients never delays
    /// a send: `realtime` (SCHED_FIFO at the lowest real-time priority; it
    /// sleeps between probes), `high` (nice -10) or `normal`. Needs root or
    /// CAP_SYS_NICE at start; without it the prober falls back to `normal`
    /// with a warning.
    #[arg(long, value_name = "PRIORITY", value_enum, default_value_t = ProbePriority::Realtime)]
    pub probe_priority: ProbePriority,

    /// Address and port to serve on. Keep it on loopback unless the page is
    /// loaded from elsewhere, and then consider --token.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder with the built page (Trunk's dist/), served at / instead of
    /// the page built into the binary. Default: the built-in page, else
    /// ./dist if it holds one.
    #[arg(long, value_name = "DIR", env = "MIGWATCH_WEB_ROOT")]
    pub web_root: Option<PathBuf>,

    /// Another origin whose pages may read this sidecar (repeatable), e.g.
    /// http://192.0.2.10:8080. `*` allows any origin.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,

    /// Require clients to pass ?token=TOKEN.
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with = "token_file",
        env = "MIGWATCH_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Read the token from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// When started as root, run as this user once the socket is open.
    #[arg(long, value_name = "USER", default_value = "nobody")]
    pub user: String,

    /// How much history to keep per target for clients that resume (units
    /// as above), within --history-memory.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub history: Duration,

    /// The most memory all targets' histories may take together, in MiB:
    /// with many targets each keeps less than --history (1000 targets at
    /// 10 Hz keep about 3 minutes each with the default).
    #[arg(long, value_name = "MIB", default_value = "64", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub history_memory: u32,

    /// Chunks (of up to 10 ms of events each) queued per client before a
    /// client that stopped reading is cut off with `event: overflow`.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = clap::value_parser!(u32).range(4..=100_000))]
    pub client_queue: u32,

    /// Serving: names, timeouts, connection cap, TLS, logs.
    #[command(flatten)]
    pub http: crate::http::args::HttpArgs,
}

/// Parses `250us`, `10ms`, `1.5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?} needs a unit: us, ms, s or m (e.g. 10ms)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a number followed by a unit (e.g. 10ms)"))?;
    let secs = match unit {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?}: use us, ms, s or m"
            ))
        }
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{s:?} must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a probe interval, 50us..10s.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_micros(50) || d > Duration::from_secs(10) {
        return Err(format!("interval {s} is outside 50us..10s"));
    }
    Ok(d)
}

/// How often to read the target's clock: `None` when switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockEvery(pub Option<Duration>);

/// Parses a timestamp-probe interval, 10ms..60s, or `off`.
pub fn parse_clock_interval(s: &str) -> Result<ClockEvery, String> {
    if s.trim() == "off" {
        return Ok(ClockEvery(None));
    }
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(60) {
        return Err(format!(
            "clock interval {s} is outside 10ms..60s (or `off`)"
        ));
    }
    Ok(ClockEvery(Some(d)))
}

/// Parses a probe timeout, 1ms..60s.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(60) {
        return Err(format!("timeout {s} is outside 1ms..60s"));
    }
    Ok(d)
}

/// Accepts a unicast IPv4 literal.
pub fn parse_target(s: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = s.trim().parse().map_err(|_| {
        format!("{s:?} is not an IPv4 address; give the VM's address, e.g. --target 192.0.2.10")
    })?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("{ip} cannot be probed: give one host's address"));
    }
    Ok(ip)
}

impl Args {
    /// Cross-field checks clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        // The outstanding-probe table holds 65 536 probes; a timeout must fit
        // well inside it so a late reply is still recognised.
        if self.target.is_empty() && self.targets_file.is_none() {
            return Err(
                "nothing to watch: give --target ADDR (repeatable) or --targets-file FILE".into(),
            );
        }
        let slots = self.timeout.as_secs_f64() / self.interval.as_secs_f64();
        if slots > 32_768.0 {
            return Err(format!(
                "--timeout {:?} is more than 32768 intervals of {:?}: lengthen the interval or shorten the timeout",
                self.timeout, self.interval
            ));
        }
        Ok(())
    }
}

impl Args {
    /// What to start, from the flags (the targets file made absolute, as
    /// the process later moves into --web-root).
    pub fn setup(&self) -> Result<crate::service::Setup, String> {
        let targets_file = match &self.targets_file {
            Some(p) => Some(
                std::fs::canonicalize(p)
                    .map_err(|e| format!("cannot read --targets-file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        Ok(crate::service::Setup {
            targets: self.target.clone(),
            targets_file,
            defaults: crate::targets::Defaults {
                interval: self.interval,
                timeout: self.timeout,
                clock_interval: self.clock_interval.0,
            },
            capture_iface: self.capture_iface.clone(),
            probe_priority: self.probe_priority,
            user: self.user.clone(),
            history: self.history,
            history_memory: self.history_memory as usize * (1 << 20),
            client_queue: self.client_queue as usize,
        })
    }
}

/// How the probe thread is scheduled (`--probe-priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbePriority {
    /// SCHED_FIFO at the lowest real-time priority.
    Realtime,
    /// Nice -10.
    High,
    /// Like every other thread.
    Normal,
}

impl ProbePriority {
    /// Its name, as the flag takes it.
    pub fn name(self) -> &'static str {
        match self {
            ProbePriority::Realtime => "realtime",
            ProbePriority::High => "high",
            ProbePriority::Normal => "normal",
        }
    }
}

/// Keys a config file may hold: the flags, without `--`.
const CONFIG_KEYS: [&str; 16] = [
    "target",
    "targets-file",
    "history-memory",
    "interval",
    "timeout",
    "clock-interval",
    "capture-iface",
    "probe-priority",
    "listen",
    "web-root",
    "allow-origin",
    "token",
    "token-file",
    "user",
    "history",
    "client-queue",
];

/// Turns a config file's text into flags, checking each field on its own so
/// an error names the field.
pub fn config_to_flags(path: &str, text: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config {path}: not valid TOML: {e}"))?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let http_keys = crate::http::args::CONFIG_KEYS;
        if !CONFIG_KEYS.contains(&flag.as_str()) && !http_keys.contains(&flag.as_str()) {
            return Err(format!(
                "config {path}: unknown field `{key}`; known fields: {}, {}",
                CONFIG_KEYS.join(", "),
                http_keys.join(", ")
            ));
        }
        let values: Vec<String> = match value {
            toml::Value::Array(items)
                if flag == "allow-origin" || flag == "target" || flag == "allow-host" => items
                .iter()
                .map(|v| scalar(v).ok_or_else(|| format!("config {path}: field `{key}` must be a list of strings")))
                .collect::<Result<_, _>>()?,
            v => vec![scalar(v).ok_or_else(|| {
                format!("config {path}: field `{key}` must be a string or number, e.g. {key} = \"10ms\"")
            })?],
        };
        for v in values {
            let mut probe = vec!["migwatch-sidecar".to_string()];
            if flag != "target" {
                // Parsing only: this address is never probed.
                probe.extend(["--target".into(), "127.0.0.1".into()]);
            }
            probe.extend([format!("--{flag}"), v.clone()]);
            if let Err(e) = <Cli as clap::Parser>::try_parse_from(&probe) {
                let why = e.to_string();
                let why = why
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                return Err(format!("config {path}: field `{key}`: {why}"));
            }
            flags.extend([format!("--{flag}"), v]);
        }
    }
    Ok(flags)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// The process's arguments with a `--config FILE` expanded: the file's
/// flags go first, so flags on the command line override them.
pub fn expand_config(argv: Vec<String>) -> Result<Vec<String>, String> {
    let pos = argv
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="));
    let Some(pos) = pos else { return Ok(argv) };
    let path = match argv[pos].strip_prefix("--config=") {
        Some(p) => p.to_string(),
        None => match argv.get(pos + 1) {
            Some(p) => p.clone(),
            None => return Ok(argv), // clap reports the missing value
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config file {path}: {e}"))?;
    let flags = config_to_flags(&path, &text)?;
    let mut out = vec![argv[0].clone()];
    out.extend(flags);
    out.extend(argv.into_iter().skip(1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["10", "ms", "-1s", "0s", "1x", "1e3ms", "", "NaNs"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn interval_and_target_are_checked() {
        assert!(parse_interval("40us").is_err());
        assert!(parse_interval("11s").is_err());
        assert!(parse_interval("1ms").is_ok());
        assert_eq!(parse_clock_interval("off"), Ok(ClockEvery(None)));
        assert_eq!(
            parse_clock_interval("200ms"),
            Ok(ClockEvery(Some(Duration::from_millis(200))))
        );
        assert!(parse_clock_interval("1ms").is_err());
        assert!(parse_target("198.18.0.2").is_ok());
        for bad in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "example.org",
            "1.2.3",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn flags_parse_as_data() {
        let a = Cli::try_parse_from(["x", "--target", "127.0.0.1", "--interval", "1ms"])
            .unwrap()
            .serve;
        assert_eq!(a.interval, Duration::from_millis(1));
        assert_eq!(a.timeout, Duration::from_secs(1));
        assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            a.clock_interval,
            ClockEvery(Some(Duration::from_millis(200)))
        );
        assert!(a.validate().is_ok());
        let a = Cli::try_parse_from([
            "x",
            "--target",
            "127.0.0.1",
            "--interval",
            "100us",
            "--timeout",
            "60s",
        ])
        .unwrap()
        .serve;
        assert!(a.validate().is_err());
        assert!(Cli::try_parse_from(["x"]).is_err());
        assert!(Cli::try_parse_from(["x", "detect", "t.csv", "--target", "127.0.0.1"]).is_err());
    }

    #[test]
    fn config_file_fields_become_flags_and_flags_win() {
        let flags = config_to_flags(
            "c.toml",
            "target = \"198.18.0.2\"\ninterval = \"5ms\"\nallow-origin = [\"http://a\", \"http://b\"]\nclient_queue = 16\n",
        )
        .unwrap();
        let mut argv = vec!["x".to_string()];
        argv.extend(flags);
        argv.extend(["--interval".to_string(), "20ms".to_string()]);
        let a = Cli::try_parse_from(&argv).unwrap().serve;
        assert_eq!(a.target, vec!["198.18.0.2".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(a.interval, Duration::from_millis(20));
        assert_eq!(a.allow_origin, vec!["http://a", "http://b"]);
        assert_eq!(a.client_queue, 16);
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = config_to_flags("c.toml", "interval = \"fast\"").unwrap_err();
        assert!(e.contains("field `interval`"), "{e}");
        let e = config_to_flags("c.toml", "intervall = \"5ms\"").unwrap_err();
        assert!(e.contains("unknown field `intervall`"), "{e}");
        let e = config_to_flags("c.toml", "target = [1]").unwrap_err();
        assert!(e.contains("field `target`"), "{e}");
        assert!(config_to_flags("c.toml", "= broken")
            .unwrap_err()
            .contains("not valid TOML"));
    }
}
