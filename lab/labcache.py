"""The lab's cache: QEMU 10.0.2, the guest kernel and its initramfs.

Everything is fetched from Debian's package archive with `apt-get download`
and unpacked with `dpkg -x` into the cache folder; nothing is installed
except the shared libraries QEMU needs (the same ones Debian 12's QEMU 7.2
pulls in). A finished cache is described by `ready.json`; a second run that
finds it (and an unchanged guest init) touches no network at all.
"""

import glob
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_INIT = os.path.join(HERE, "guest", "init")
GUEST_DIRTIER = os.path.join(HERE, "guest", "dirtier.c")

# QEMU from bookworm-backports. Debian 12's own QEMU 7.2 sometimes corrupts a
# guest that writes memory during a TCG migration; 10.0.2 did not (issue 6).
# The backports suite is read from the same mirror as the machine's own
# bookworm suite (or from $MIGWATCH_LAB_MIRROR, a Debian archive URL).
SUITE = "bookworm"
QEMU_VERSION = "1:10.0.2+ds-2+deb13u1~bpo12+1"
QEMU_PACKAGES = ["qemu-system-x86", "qemu-system-data", "seabios"]
# Not needed: we boot with -kernel and give the NIC no option ROM.
QEMU_SKIP_DEPENDS = {"qemu-system-common", "qemu-system-data", "seabios", "ipxe-qemu"}

KERNEL_META = "linux-image-cloud-amd64"
# The modules the guest loads (their dependencies are added automatically).
GUEST_MODULES = ["virtio_pci", "virtio_net"]

CACHE_FORMAT = 1


def log(msg):
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


class Unavailable(RuntimeError):
    """QEMU or the guest kernel cannot be had or run here (no apt or no
    Debian archive, a fetch or install failed, QEMU's libraries are missing,
    QEMU does not start): the lab cannot run on this machine. lab.py exits
    77 (skipped) with a loud banner."""


# Failures of these mean "cannot fetch or install", not a bug of the lab.
FETCH_TOOLS = ("apt-get", "apt-cache", "dpkg", "dpkg-deb")


def run(cmd, **kw):
    """Runs a command, raising with its output if it fails."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    except FileNotFoundError as e:
        if os.path.basename(cmd[0]) in FETCH_TOOLS:
            raise Unavailable(f"{cmd[0]} is not installed here ({e})") from None
        raise
    if p.returncode != 0:
        cls = Unavailable if os.path.basename(cmd[0]) in ("apt-get", "apt-cache") else RuntimeError
        raise cls(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return p.stdout


def default_cache():
    return os.environ.get("MIGWATCH_LAB_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "migwatch-lab"
    )


def file_hash(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- apt helpers


def debian_mirror():
    """The archive URL the machine's apt uses for bookworm itself."""
    if os.environ.get("MIGWATCH_LAB_MIRROR"):
        return os.environ["MIGWATCH_LAB_MIRROR"]
    ensure_system_lists()
    out = run(["apt-cache", "policy"])
    for line in out.splitlines():
        m = re.match(rf"\s*\d+\s+(\S+)\s+{SUITE}/main\s+amd64\s+Packages", line)
        if m:
            return m.group(1)
    raise Unavailable(f"apt has no {SUITE}/main source: set MIGWATCH_LAB_MIRROR to a Debian archive URL")


def private_apt_opts(cache):
    """apt options for a private sources list with its own lists and archives,
    so the machine's apt configuration is neither used nor changed."""
    d = os.path.join(cache, "apt")
    for sub in ("lists/partial", "archives/partial"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    src = os.path.join(d, "sources.list")
    with open(src, "w") as f:
        f.write(f"deb {debian_mirror()} {SUITE}-backports main\n")
    return [
        "-o", f"Dir::Etc::sourcelist={src}",
        "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::State::Lists={d}/lists",
        "-o", f"Dir::Cache={d}",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]


def apt_download(opts, pkgs, dest):
    """Downloads .deb files into dest; returns their paths by package name."""
    os.makedirs(dest, exist_ok=True)
    run(["apt-get", "-q", *opts, "-o", "APT::Sandbox::User=root", "download", *pkgs], cwd=dest)
    out = {}
    for spec in pkgs:
        name = spec.split("=")[0]
        hits = sorted(glob.glob(os.path.join(dest, f"{name}_*.deb")))
        if not hits:
            raise Unavailable(f"apt-get download {spec} produced no .deb")
        out[name] = hits[-1]
    return out


def ensure_system_lists():
    """The machine's own apt lists (bookworm): fetched once if empty."""
    p = subprocess.run(["apt-cache", "policy", KERNEL_META], stdout=subprocess.PIPE, text=True)
    if "Candidate:" not in p.stdout or "Candidate: (none)" in p.stdout:
        log("apt-get update (the machine's lists are empty)")
        run(["apt-get", "-q", "update"])


# ---------------------------------------------------------------- QEMU


def ensure_qemu(cache):
    root = os.path.join(cache, "qemu")
    binary = os.path.join(root, "usr", "bin", "qemu-system-x86_64")
    if not os.path.exists(binary):
        opts = private_apt_opts(cache)
        log("fetching QEMU from bookworm-backports (apt-get download, dpkg -x; no install)")
        run(["apt-get", "-q", *opts, "update"])
        pkgs = [f"qemu-system-x86={QEMU_VERSION}", f"qemu-system-data={QEMU_VERSION}", "seabios"]
        debdir = os.path.join(cache, "debs")
        try:
            debs = apt_download(opts, pkgs, debdir)
        except RuntimeError:
            log(f"QEMU {QEMU_VERSION} is gone from backports; taking the newest there")
            debs = apt_download(opts, QEMU_PACKAGES, debdir)
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for deb in debs.values():
            run(["dpkg", "-x", deb, tmp])
        # The library list, for ensure_qemu_libs on this or a later run.
        depends = run(["dpkg-deb", "-f", debs["qemu-system-x86"], "Depends"])
        with open(os.path.join(tmp, "depends.txt"), "w") as f:
            f.write(depends)
        shutil.rmtree(root, ignore_errors=True)
        os.rename(tmp, root)
    ensure_qemu_libs(root, binary)
    try:
        version = run([binary, "--version"]).splitlines()[0]
    except (RuntimeError, OSError) as e:
        raise Unavailable(f"QEMU does not run here: {e}") from None
    return {
        "binary": binary,
        "datadirs": [os.path.join(root, "usr/share/qemu"), os.path.join(root, "usr/share/seabios")],
        "version": version,
    }


def missing_libs(binary):
    out = run(["ldd", binary])
    return [l.split()[0] for l in out.splitlines() if "not found" in l]


def ensure_qemu_libs(root, binary):
    """Installs (with apt, from bookworm) the libraries QEMU links against.
    They are the ones Debian's QEMU 7.2 depends on too."""
    missing = missing_libs(binary)
    if not missing:
        return
    with open(os.path.join(root, "depends.txt")) as f:
        depends = f.read()
    pkgs = []
    for alt in depends.split(","):
        name = re.split(r"[ (|]", alt.strip())[0]
        if name and name not in QEMU_SKIP_DEPENDS:
            pkgs.append(name)
    log(f"installing QEMU's libraries ({', '.join(missing)} missing): apt-get install {' '.join(pkgs)}")
    ensure_system_lists()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "-q", "-y", "--no-install-recommends", "install", *pkgs], env=env)
    still = missing_libs(binary)
    if still:
        raise Unavailable(f"QEMU still misses libraries: {still}")


# ---------------------------------------------------------------- guest


def ensure_kernel(cache):
    found = sorted(glob.glob(os.path.join(cache, "kernel", "boot", "vmlinuz-*")))
    if not found:
        ensure_system_lists()
        deps = run(["apt-cache", "depends", KERNEL_META])
        m = re.search(r"Depends: (linux-image-\S+)", deps)
        if not m:
            raise RuntimeError(f"cannot resolve {KERNEL_META}:\n{deps}")
        log(f"fetching the guest kernel {m.group(1)} (apt-get download, dpkg -x)")
        debs = apt_download([], [m.group(1)], os.path.join(cache, "debs"))
        tmp = os.path.join(cache, "kernel.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg", "-x", debs[m.group(1)], tmp])
        # Keep only what the guest needs: the image and the module tree.
        shutil.rmtree(os.path.join(tmp, "usr"), ignore_errors=True)
        os.rename(tmp, os.path.join(cache, "kernel"))
        found = sorted(glob.glob(os.path.join(cache, "kernel", "boot", "vmlinuz-*")))
    vmlinuz = found[-1]
    release = os.path.basename(vmlinuz)[len("vmlinuz-"):]
    moddir = os.path.join(cache, "kernel", "lib", "modules", release)
    return {"vmlinuz": vmlinuz, "release": release, "moddir": moddir}


def ensure_busybox(cache):
    bb = os.path.join(cache, "busybox", "bin", "busybox")
    if not os.path.exists(bb):
        ensure_system_lists()
        log("fetching busybox-static (apt-get download, dpkg -x)")
        debs = apt_download([], ["busybox-static"], os.path.join(cache, "debs"))
        tmp = os.path.join(cache, "busybox.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg", "-x", debs["busybox-static"], tmp])
        os.rename(tmp, os.path.join(cache, "busybox"))
    return bb


def module_info(path):
    """(name, [dependencies]) from a module's .modinfo strings."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        import lzma

        data = lzma.decompress(data)
    elif path.endswith(".zst"):
        raise RuntimeError("zstd-compressed modules are not supported")
    deps = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    names = deps.group(1).decode().split(",") if deps else []
    return [n for n in names if n]


def module_order(moddir, wanted):
    """Module files (relative to moddir) in load order for `wanted`."""
    index = {}
    for p in glob.glob(os.path.join(moddir, "kernel", "**", "*.ko*"), recursive=True):
        name = os.path.basename(p).split(".ko")[0].replace("-", "_")
        index[name] = p
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise RuntimeError(f"module {name} not found in {moddir}")
        for dep in module_info(index[name]):
            visit(dep)
        order.append(index[name])

    for w in wanted:
        visit(w)
    return order


class Cpio:
    """A minimal writer for the newc cpio format the kernel unpacks."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08x}"
            for v in (
                self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0,
            )
        )
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, perm=0o644):
        self._entry(name, 0o100000 | perm, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_dirtier(cache):
    """The guest's memory dirtier, a static binary (needs a C compiler and a
    static libc, as every Rust toolchain machine has). Without one the guest
    falls back to a dd loop, whose dirty set is less exact."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        log("no C compiler: the guest dirties memory with a dd loop instead")
        return None
    out = os.path.join(cache, "dirtier")
    p = subprocess.run([cc, "-static", "-O2", "-o", out, GUEST_DIRTIER],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        log(f"cannot build the dirtier ({p.stdout.strip()[-300:]}): the guest uses a dd loop instead")
        return None
    return out


def build_initrd(path, busybox, kernel, dirtier):
    c = Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    with open(GUEST_INIT, "rb") as f:
        c.file("init", f.read(), 0o755)
    if dirtier:
        with open(dirtier, "rb") as f:
            c.file("bin/dirtier", f.read(), 0o755)
    names = []
    for p in module_order(kernel["moddir"], GUEST_MODULES):
        base = os.path.basename(p)
        with open(p, "rb") as f:
            data = f.read()
        if base.endswith(".xz"):
            import lzma

            data, base = lzma.decompress(data), base[: -len(".xz")]
        c.file(f"lib/modules/{base}", data)
        names.append(base)
    c.file("lib/modules/order", ("\n".join(names) + "\n").encode())
    tmp = path + ".tmp"
    with gzip.open(tmp, "wb", compresslevel=6) as f:
        f.write(c.finish())
    os.rename(tmp, path)
    return names


def ensure(cache):
    """Makes sure the cache holds everything; returns its description."""
    os.makedirs(cache, exist_ok=True)
    ready = os.path.join(cache, "ready.json")
    init_hash = file_hash(GUEST_INIT, GUEST_DIRTIER, os.path.abspath(__file__))
    try:
        with open(ready) as f:
            desc = json.load(f)
        if (
            desc.get("format") == CACHE_FORMAT
            and desc.get("init_hash") == init_hash
            and all(os.path.exists(p) for p in (desc["qemu"]["binary"], desc["kernel"], desc["initrd"]))
            and not missing_libs(desc["qemu"]["binary"])
        ):
            return desc
    except (OSError, ValueError, KeyError):
        pass
    qemu = ensure_qemu(cache)
    kernel = ensure_kernel(cache)
    busybox = ensure_busybox(cache)
    initrd = os.path.join(cache, f"initrd-{kernel['release']}-{init_hash}.img")
    dirtier = build_dirtier(cache)
    modules = build_initrd(initrd, busybox, kernel, dirtier)
    for old in glob.glob(os.path.join(cache, "initrd-*.img")):
        if old != initrd:
            os.remove(old)
    desc = {
        "format": CACHE_FORMAT,
        "init_hash": init_hash,
        "qemu": qemu,
        "kernel": kernel["vmlinuz"],
        "kernel_release": kernel["release"],
        "initrd": initrd,
        "modules": modules,
        "dirtier": bool(dirtier),
    }
    with open(ready + ".tmp", "w") as f:
        json.dump(desc, f, indent=1)
    os.rename(ready + ".tmp", ready)
    log(f"cache ready in {cache}: {qemu['version']}, guest kernel {kernel['release']}")
    return desc


if __name__ == "__main__":
    print(json.dumps(ensure(sys.argv[1] if len(sys.argv) > 1 else default_cache()), indent=1))
