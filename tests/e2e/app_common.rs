//! Helpers for the page tests: reading tiles and the detail view through
//! their `data-*` attributes, and feeding a file to the import input.

use migwatch_tests::browser::Browser;
use migwatch_tests::repo_root;
use serde_json::Value;

/// What a tile says, from its `data-*` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileState {
    /// `green`, `yellow`, `red` or `nodata`.
    pub light: String,
    /// `connecting`, `live`, `reconnecting`, `failed` or `replay`.
    pub conn: String,
    /// Samples received.
    pub samples: u64,
    /// Samples held in the ring.
    pub held: u64,
    /// Oldest and newest seq held.
    pub first_seq: Option<u64>,
    /// Newest seq held.
    pub last_seq: Option<u64>,
    /// Migrations detected.
    pub migrations: u64,
}

impl TileState {
    /// Every seq between the oldest and newest held is there.
    pub fn no_holes(&self) -> bool {
        match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => b - a + 1 == self.held,
            _ => self.held == 0,
        }
    }
}

const READ_TILES: &str = "
    return Array.from(document.querySelectorAll('#tiles .tile')).map(t => [
        t.dataset.source || '', t.dataset.light || '', t.dataset.conn || '',
        Number(t.dataset.samples || 0), Number(t.dataset.held || 0),
        t.dataset.firstSeq || '', t.dataset.lastSeq || '', Number(t.dataset.migrations || 0)]);
";

fn num(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// Every tile as `(source, state)`, in page order.
pub fn tiles(b: &Browser) -> Vec<(String, TileState)> {
    let Ok(Value::Array(rows)) = b.eval(READ_TILES) else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| {
            Some((
                r.get(0)?.as_str()?.to_string(),
                TileState {
                    light: r.get(1)?.as_str()?.to_string(),
                    conn: r.get(2)?.as_str()?.to_string(),
                    samples: r.get(3)?.as_u64()?,
                    held: r.get(4)?.as_u64()?,
                    first_seq: num(r.get(5)?),
                    last_seq: num(r.get(6)?),
                    migrations: r.get(7)?.as_u64()?,
                },
            ))
        })
        .collect()
}

/// The tile whose source (sidecar base URL or `file: NAME`) is `source`.
pub fn tile(b: &Browser, source: &str) -> Option<TileState> {
    tiles(b).into_iter().find(|(s, _)| s == source).map(|t| t.1)
}

/// Loads the page from the sidecar at `base` and waits for its tile.
pub fn open_page(b: &Browser, base: &str) -> anyhow::Result<TileState> {
    b.goto(&format!("{base}/"))?;
    migwatch_tests::wait_for(
        "the page",
        std::time::Duration::from_secs(15),
        std::time::Duration::from_millis(50),
        || tile(b, base),
    )
}

/// The overall light.
pub fn overall(b: &Browser) -> Option<String> {
    b.eval("const o = document.getElementById('overall'); return o ? o.dataset.light : null;")
        .ok()?
        .as_str()
        .map(String::from)
}

/// Puts `text` into the import input as a file named `name`, as the file
/// picker would (the page reads it through the same `change` handler).
pub fn import(b: &Browser, name: &str, text: &str) -> anyhow::Result<()> {
    let script = format!(
        "const input = document.getElementById('import');
         if (!input) return false;
         const dt = new DataTransfer();
         dt.items.add(new File([{}], {}));
         input.files = dt.files;
         input.dispatchEvent(new Event('change', {{bubbles: true}}));
         return true;",
        serde_json::to_string(text)?,
        serde_json::to_string(name)?
    );
    anyhow::ensure!(b.eval(&script)?.as_bool() == Some(true), "no #import input");
    Ok(())
}

/// The notice line: `(kind, text)`.
pub fn notice(b: &Browser) -> Option<(String, String)> {
    let v = b
        .eval(
            "const n = document.getElementById('notice');
             if (!n || n.hidden) return null;
             return [n.dataset.kind || '', n.textContent];",
        )
        .ok()?;
    Some((v.get(0)?.as_str()?.into(), v.get(1)?.as_str()?.into()))
}

/// `dist/` must be built.
pub fn dist() -> String {
    let dist = repo_root().join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "dist/ is not built: run `trunk build --release` (scripts/test.sh does)"
    );
    dist.display().to_string()
}

/// Waits until the sidecar's own detector says green for its (first)
/// target, with a baseline behind it: the page replays the sidecar's
/// history on connect, so a start-up transient (a loaded machine's first
/// second) would otherwise show as the yellow it was. The light is green
/// from the first reply, so it also waits for two of the baseline's
/// 64-reply blocks and five clock readings: a test that stops the guest
/// right after start (seen on a loaded machine: at the second probe) has
/// its stop judged before the detector has a level or a clock line, and a
/// page fed that history in one burst split it into two events.
pub fn wait_sidecar_green(sc: &migwatch_tests::sidecar::Sidecar) -> anyhow::Result<()> {
    let within = std::time::Duration::from_secs(60);
    crate::faults::wait_metric(sc, "migwatch_replies_total", 0.0, 128.0, within)?;
    crate::faults::wait_metric(sc, "migwatch_clock_replies_total", 0.0, 5.0, within)?;
    migwatch_tests::wait_for(
        "the sidecar's own light to be green",
        within,
        std::time::Duration::from_millis(100),
        || {
            sc.get("/metrics").ok().filter(|m| {
                m.lines().any(|l| {
                    l.starts_with("migwatch_light{") && l.contains("\"green\"") && l.ends_with(" 1")
                })
            })
        },
    )?;
    Ok(())
}

/// `dist-bench/` (the page with its measurement hooks) must be built.
pub fn bench_dist() -> String {
    let dist = repo_root().join("dist-bench");
    assert!(
        dist.join("index.html").is_file(),
        "dist-bench/ is not built: run `trunk build --release --features bench --dist dist-bench`"
    );
    dist.display().to_string()
}

/// A free loopback port (for a sidecar that must come back on it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The sidecar flags of every test with a [`GuestResponder`]: echo every
/// 10 ms (500 ms timeout), the guest's clock 10 times a second, and the
/// announce capture on the namespace's host side; then `extra`.
pub fn guest_flags<'a>(ns: &'a migwatch_tests::netns::TargetNs, extra: &[&'a str]) -> Vec<&'a str> {
    let mut f = vec![
        "--interval",
        "10ms",
        "--timeout",
        "500ms",
        "--clock-interval",
        "100ms",
        "--capture-iface",
        &ns.host_if,
    ];
    f.extend_from_slice(extra);
    f
}

/// A namespace with the emulated guest in it, and a sidecar probing the
/// guest with [`guest_flags`] that serves the page (`dist/`): the set-up
/// of the page tests that migrate a guest. Keep it whole until the test
/// ends: its fields drop in order, the sidecar first, then the guest, then
/// the namespace.
pub struct PageGuest {
    /// The sidecar, serving the page.
    pub sc: migwatch_tests::sidecar::Sidecar,
    /// The guest, to migrate.
    pub guest: GuestResponder,
    /// Its namespace, held only to be removed last.
    _ns: migwatch_tests::netns::TargetNs,
}

/// Starts a [`PageGuest`].
pub fn page_guest() -> anyhow::Result<PageGuest> {
    let dist = dist();
    let ns = migwatch_tests::netns::TargetNs::create()?;
    let guest = GuestResponder::start(&ns)?;
    let sc = migwatch_tests::sidecar::Sidecar::start(
        &ns.target.to_string(),
        &guest_flags(&ns, &["--web-root", &dist]),
    )?;
    Ok(PageGuest { sc, guest, _ns: ns })
}

/// `mw-responder` as a guest that can be "live-migrated": it answers echo
/// and ICMP Timestamp requests (its clock stands still during `migrate MS`)
/// and, after each migration, announces its MAC on its interface (RARP and
/// gratuitous ARP). The namespace kernel's echo and timestamp replies are
/// switched off. Killed by PID on drop (its [`Responder`]).
///
/// [`Responder`]: migwatch_tests::netns::Responder
pub struct GuestResponder {
    r: migwatch_tests::netns::Responder,
    ns: String,
}

/// The nft table that keeps the namespace kernel's timestamp replies in.
const GUEST_NFT_TABLE: &str = "mwguest";

impl GuestResponder {
    /// Starts it in `ns`, after silencing the kernel: no echo replies
    /// (sysctl), and an nft output rule that drops ICMP timestamp replies
    /// unless a user-space socket sent them (`meta skuid` only matches a
    /// socket with an owner; the kernel's ICMP socket has none), so the
    /// responder's raw-socket replies go out and the kernel's do not.
    pub fn start(ns: &migwatch_tests::netns::TargetNs) -> anyhow::Result<GuestResponder> {
        let t = GUEST_NFT_TABLE;
        ns.exec(&["nft", "add", "table", "ip", t])?;
        ns.exec(&[
            "nft",
            "add chain ip",
            t,
            "out { type filter hook output priority 0 ; policy accept ; }",
        ])?;
        ns.exec(&[
            "nft",
            "add rule ip",
            t,
            "out icmp type timestamp-reply meta skuid 0 accept",
        ])?;
        ns.exec(&[
            "nft",
            "add rule ip",
            t,
            "out icmp type timestamp-reply counter drop",
        ])?;
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mw-responder"));
        let r = ns.responder_with(bin, &["--timestamps", "--announce-iface", &ns.ns_if])?;
        Ok(GuestResponder {
            r,
            ns: ns.name.clone(),
        })
    }

    /// Sends one command (see `tests/responder.rs`) and waits for its `ok`.
    pub fn cmd(&mut self, c: &str) -> anyhow::Result<()> {
        self.r.cmd(c)
    }

    /// Timestamp replies of the namespace's kernel that the nft rule
    /// dropped so far.
    pub fn kernel_replies_dropped(&self) -> anyhow::Result<u64> {
        let out = migwatch_tests::netns::sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "nft",
            "list",
            "table",
            "ip",
            GUEST_NFT_TABLE,
        ])?;
        let n = out
            .lines()
            .find(|l| l.contains("drop"))
            .and_then(|l| l.split("packets ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        n.ok_or_else(|| anyhow::anyhow!("no drop counter in {out}"))
    }
}
