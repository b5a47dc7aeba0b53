#!/usr/bin/env python3
"""Checks a faceprobe evidence bundle, without faceprobe.

Usage: python3 verify.py [BUNDLE_DIR_OR_ZIP]

With no argument it checks the folder this file sits in. It needs Python 3.8 or later and
nothing but its standard library. It prints one line per check, "ok   ..." or "FAIL ...",
naming each file or event that fails, then a summary line. Exit status: 0 when everything
holds, 1 when anything fails, 2 on a usage error.

What it checks (the format is described in docs/evidence-format.md of faceprobe, and in
VERIFY.txt / VERIFIER.txt next to this file):
  - SHA256SUMS and manifest.json against the files present;
  - manifest.sig: an OpenSSH signature (SSHSIG, namespace faceprobe-evidence) of
    manifest.json by the Ed25519 key in faceprobe-key.pub, verified here in pure Python
    (and, when ssh-keygen is installed, by ssh-keygen as a second opinion);
  - checkpoints.jsonl: each signed chain head (namespace faceprobe-checkpoint);
  - events.jsonl: order, canonical encoding, address commitments;
  - chain.jsonl: every link of the hash chain, from its start to its end, against the
    actor's events and the signed checkpoints;
  - canaries/index.csv, robots/*.txt, site-images.csv against the files and events.

A fleet bundle (format faceprobe-fleet-evidence-v1) holds one such record per instance of the
fleet, in instances/NAME/, each with its own chain and its own checkpoint key: the top folder is
checked as above up to manifest.sig, then each instance's folder as a bundle of its own, every
line naming the instance.
"""

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from array import array
from binascii import unhexlify
from bisect import bisect_left

EVIDENCE_NAMESPACE = "faceprobe-evidence"
CHECKPOINT_NAMESPACE = "faceprobe-checkpoint"
FORMAT = "faceprobe-evidence-v1"
FLEET_FORMAT = "faceprobe-fleet-evidence-v1"
# An instance's folder name, also its name in manifest.json: never "." or "..", never a "/".
INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PRINCIPAL = "faceprobe"
UNLISTED = ("SHA256SUMS", "manifest.sig")            # not in SHA256SUMS
NOT_IN_MANIFEST = ("manifest.json", "manifest.sig", "SHA256SUMS")
# Files a desktop adds to a folder by itself; reported, never counted as added evidence.
DESKTOP_JUNK = (".DS_Store", "Thumbs.db", "desktop.ini")
MAX_LINES_PER_CHECK = 30                              # FAIL lines printed per check


# ---------------------------------------------------------------------------------------
# Ed25519 (RFC 8032, section 5.1), with Python integers.
#
# The curve is the twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2 over GF(p). Points are
# kept in extended homogeneous coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, x*y = T/Z.

P = 2 ** 255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
D2 = (2 * D) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)                     # a square root of -1
L = 2 ** 252 + 27742317777372353535851937790883648493  # order of the base point
IDENTITY = (0, 1, 1, 0)


def _add(p1, p2):
    """Point addition (RFC 8032 5.1.4; the formulas are complete on this curve, so they
    double as well)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * D2 * t2 % P
    dd = 2 * z1 * z2 % P
    e = b - a
    f = dd - c
    g = dd + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _recover_x(y, sign):
    """x from y and the sign bit (RFC 8032 5.1.3, step 2-4), or None if there is none."""
    if y >= P:
        return None
    y2 = y * y % P
    u = (y2 - 1) % P
    v = (D * y2 + 1) % P
    # candidate root x = u v^3 (u v^7)^((p-5)/8)
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P) % P, (P - 5) // 8, P) % P
    vx2 = v * x * x % P
    if vx2 == u:
        pass
    elif vx2 == (-u) % P:
        x = x * SQRT_M1 % P
    else:
        return None
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def _decode_point(s):
    if len(s) != 32:
        return None
    n = int.from_bytes(s, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _encode_point(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x = x * zi % P
    y = y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _table(pt):
    """Fixed-base table: table[i][j] = j * 16^i * pt, i < 64, j < 16."""
    rows = []
    base = pt
    for _ in range(64):
        row = [IDENTITY, base]
        for _ in range(14):
            row.append(_add(row[-1], base))
        rows.append(row)
        base = _add(row[15], base)                    # 16 * base
    return rows


def _mul(table, k):
    acc = IDENTITY
    i = 0
    while k:
        j = k & 15
        if j:
            acc = _add(acc, table[i][j])
        k >>= 4
        i += 1
    return acc


_BASE_Y = 4 * pow(5, P - 2, P) % P
_BASE = (_recover_x(_BASE_Y, 0), _BASE_Y, 1, _recover_x(_BASE_Y, 0) * _BASE_Y % P)
_BASE_TABLE = None


class Ed25519Key:
    """A public key, decoded once; its table of multiples makes each verification cheap."""

    def __init__(self, raw):
        self.raw = bytes(raw)
        pt = _decode_point(self.raw)
        if pt is None:
            raise ValueError("the public key is not a point of Ed25519")
        x, y, z, t = pt
        self._neg_table = _table(((-x) % P, y, z, (-t) % P))

    def verify(self, sig, msg):
        """RFC 8032 5.1.7: accept iff S < L and [S]B = R + [k]A, k = SHA-512(R || A || M)."""
        global _BASE_TABLE
        if len(sig) != 64:
            return False
        r = sig[:32]
        s = int.from_bytes(sig[32:], "little")
        if s >= L:
            return False
        if _BASE_TABLE is None:
            _BASE_TABLE = _table(_BASE)
        k = int.from_bytes(hashlib.sha512(r + self.raw + msg).digest(), "little") % L
        # [S]B - [k]A must be R; comparing encodings also rejects an R that does not decode
        # or is not canonically encoded.
        return _encode_point(_add(_mul(_BASE_TABLE, s), _mul(self._neg_table, k))) == r


# ---------------------------------------------------------------------------------------
# OpenSSH keys and signatures (PROTOCOL.key, PROTOCOL.sshsig)

class Bad(Exception):
    """A value that does not parse; its text says why."""


def _ssh_string(buf, off):
    if off + 4 > len(buf):
        raise Bad("truncated")
    n = int.from_bytes(buf[off:off + 4], "big")
    off += 4
    if off + n > len(buf):
        raise Bad("truncated")
    return buf[off:off + n], off + n


def _ssh_str(b):
    return len(b).to_bytes(4, "big") + b


def _b64_strict(text):
    """Decodes base64 that must be canonical (re-encoding gives the same text)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except Exception:
        raise Bad("bad base64")
    if base64.b64encode(raw) != text:
        raise Bad("non-canonical base64")
    return raw


def parse_pubkey_line(text):
    """`ssh-ed25519 AAAA... [comment]` -> the 32-byte key and its wire blob."""
    parts = text.split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise Bad("not an ssh-ed25519 public key line")
    blob = _b64_strict(parts[1].encode("ascii", "replace"))
    return parse_pubkey_blob(blob), blob


def parse_pubkey_blob(blob):
    kind, off = _ssh_string(blob, 0)
    if kind != b"ssh-ed25519":
        raise Bad("key type is %r, not ssh-ed25519" % kind.decode("ascii", "replace"))
    raw, off = _ssh_string(blob, off)
    if len(raw) != 32 or off != len(blob):
        raise Bad("malformed ssh-ed25519 key")
    return raw


def fingerprint(blob):
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


ARMOR_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
ARMOR_END = b"-----END SSH SIGNATURE-----"
B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def dearmor(text):
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < 3 or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END:
        raise Bad("not an armored SSH signature (BEGIN/END lines)")
    body = lines[1:-1]
    for ln in body:
        if not ln or not B64_CHARS.issuperset(ln):
            raise Bad("bad character in the armored signature")
    return _b64_strict(b"".join(body))


def sshsig_check(armored, message, key, namespace):
    """Verifies an armored SSHSIG signature of `message` by `key` (Ed25519Key, with .blob)
    for `namespace`. Returns None when it holds, else the reason."""
    try:
        blob = dearmor(armored)
        if blob[:6] != b"SSHSIG":
            return "no SSHSIG magic"
        off = 6
        if len(blob) < 10 or int.from_bytes(blob[6:10], "big") != 1:
            return "SSHSIG version is not 1"
        off = 10
        pub, off = _ssh_string(blob, off)
        ns, off = _ssh_string(blob, off)
        reserved, off = _ssh_string(blob, off)
        halg, off = _ssh_string(blob, off)
        sigblob, off = _ssh_string(blob, off)
        if off != len(blob):
            return "trailing bytes after the signature"
        if ns != namespace.encode():
            return "signed for namespace %r, not %r" % (ns.decode("utf-8", "replace"), namespace)
        try:
            parse_pubkey_blob(pub)
        except Bad as e:
            return "signer key: %s" % e
        if pub != key.blob:
            return "signed by another key (%s), not %s" % (fingerprint(pub), fingerprint(key.blob))
        if halg == b"sha512":
            h = hashlib.sha512(message).digest()
        elif halg == b"sha256":
            h = hashlib.sha256(message).digest()
        else:
            return "unknown hash algorithm %r" % halg.decode("ascii", "replace")
        stype, o2 = _ssh_string(sigblob, 0)
        sig, o2 = _ssh_string(sigblob, o2)
        if stype != b"ssh-ed25519" or len(sig) != 64 or o2 != len(sigblob):
            return "not an ssh-ed25519 signature"
        signed = b"SSHSIG" + _ssh_str(ns) + _ssh_str(reserved) + _ssh_str(halg) + _ssh_str(h)
        if not key.verify(sig, signed):
            return "the Ed25519 signature does not verify"
        return None
    except Bad as e:
        return str(e)


class SigningKey:
    def __init__(self, line):
        self.raw, self.blob = parse_pubkey_line(line)
        self.ed = Ed25519Key(self.raw)
        self.line = "ssh-ed25519 " + base64.b64encode(self.blob).decode()
        self.fingerprint = fingerprint(self.blob)

    def verify(self, sig, msg):
        return self.ed.verify(sig, msg)


def ssh_keygen_opinion(key, armored, message, namespace):
    """Runs `ssh-keygen -Y verify`. Returns (None, why) when it could not give an opinion,
    (True, text) or (False, text)."""
    exe = shutil.which("ssh-keygen")
    if not exe:
        return None, "ssh-keygen not found"
    tmp = tempfile.mkdtemp(prefix="faceprobe-verify-")
    try:
        signers = os.path.join(tmp, "allowed_signers")
        sigfile = os.path.join(tmp, "sig")
        with open(signers, "w") as f:
            f.write('%s namespaces="%s,%s" %s\n'
                    % (PRINCIPAL, EVIDENCE_NAMESPACE, CHECKPOINT_NAMESPACE, key.line))
        with open(sigfile, "wb") as f:
            f.write(armored)
        try:
            r = subprocess.run([exe, "-Y", "verify", "-f", signers, "-I", PRINCIPAL,
                                "-n", namespace, "-s", sigfile],
                               input=message, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
        except Exception as e:
            return None, "ssh-keygen could not run (%s)" % e
        out = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
        first = out.splitlines()[0] if out else "(no output)"
        if r.returncode == 0:
            return True, first
        if "usage:" in out.lower() or "unknown option" in out or "illegal option" in out:
            return None, "this ssh-keygen has no -Y verify (OpenSSH 8.1 or later needed)"
        return False, first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Reading a bundle: a folder or a zip with one top folder

def _junk(rel):
    parts = rel.split("/")
    name = parts[-1]
    return name in DESKTOP_JUNK or name.startswith("._") or "__MACOSX" in parts


class Bundle:
    def __init__(self):
        self._hash = {}
        self.junk = []
        self.layout_errors = []

    def sha256(self, rel):
        if rel not in self._hash:
            h = hashlib.sha256()
            n = 0
            with self.open(rel) as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
            self._hash[rel] = (h.hexdigest(), n)
        return self._hash[rel]

    def read(self, rel):
        with self.open(rel) as f:
            return f.read()

    def has(self, rel):
        return rel in self.files


class DirBundle(Bundle):
    def __init__(self, root):
        Bundle.__init__(self)
        self.root = root
        self.name = os.path.basename(os.path.abspath(root))
        self.files = set()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                if _junk(rel):
                    self.junk.append(rel)
                else:
                    self.files.add(rel)

    def open(self, rel):
        if rel not in self.files:
            raise KeyError(rel)
        return open(os.path.join(self.root, *rel.split("/")), "rb")


class ZipBundle(Bundle):
    def __init__(self, path):
        Bundle.__init__(self)
        self.zf = zipfile.ZipFile(path)
        self.files = set()
        self.members = {}
        tops = set()
        for info in self.zf.infolist():
            n = info.filename
            if n.startswith("/") or "\\" in n or ".." in n.split("/"):
                self.layout_errors.append("unsafe path in the zip: %s" % show(n))
                continue
            top, _, rest = n.partition("/")
            tops.add(top)
            if n.endswith("/") or not rest:
                if not rest and not n.endswith("/"):
                    self.layout_errors.append("file outside the bundle folder: %s" % show(n))
                continue
            if _junk(n):
                self.junk.append(n)
                continue
            if rest in self.members:
                self.layout_errors.append("twice in the zip: %s" % show(n))
            self.members[rest] = info
            self.files.add(rest)
        tops.discard("__MACOSX")
        if len(tops) != 1:
            self.layout_errors.append("the zip must hold exactly one top folder, it holds %d: %s"
                                      % (len(tops), ", ".join(sorted(show(t) for t in tops))))
        self.name = sorted(tops)[0] if tops else ""

    def open(self, rel):
        return self.zf.open(self.members[rel])


class SubBundle:
    """One instance's folder of a fleet bundle, seen as a bundle of its own: its paths are
    relative to the folder, so the checks of a single bundle run on it unchanged. The fleet
    bundle's top folder reports layout errors and desktop files, not this view."""

    def __init__(self, bundle, prefix):
        self.bundle = bundle
        self.prefix = prefix                          # "instances/NAME/"
        self.name = prefix.rstrip("/")
        self.files = set(p[len(prefix):] for p in bundle.files if p.startswith(prefix))
        self.junk = []
        self.layout_errors = []

    def has(self, rel):
        return rel in self.files

    def open(self, rel):
        if rel not in self.files:
            raise KeyError(rel)
        return self.bundle.open(self.prefix + rel)

    def read(self, rel):
        with self.open(rel) as f:
            return f.read()

    def sha256(self, rel):
        if rel not in self.files:
            raise KeyError(rel)
        return self.bundle.sha256(self.prefix + rel)


def show(s):
    """A name safe to print: no control characters from a hostile file."""
    s = str(s)
    if s.isprintable() and len(s) < 300:
        return s
    return repr(s[:300])


# ---------------------------------------------------------------------------------------
# Report

class Report:
    def __init__(self):
        self.checks = 0
        self.failed = 0

    def ok(self, name, text):
        self.checks += 1
        print("ok   %s: %s" % (name, text))

    def info(self, text):
        print("info %s" % text)

    def result(self, name, fails, oktext):
        """One check: ok line, or one FAIL line per failure (capped)."""
        self.checks += 1
        if not fails:
            print("ok   %s: %s" % (name, oktext))
            return True
        self.failed += 1
        for f in fails[:MAX_LINES_PER_CHECK]:
            print("FAIL %s: %s" % (name, f))
        if len(fails) > MAX_LINES_PER_CHECK:
            print("FAIL %s: ... and %d more" % (name, len(fails) - MAX_LINES_PER_CHECK))
        return False


class InstanceReport:
    """The report of one instance of a fleet bundle: every check and remark is prefixed with
    the instance's name, and counts in the bundle's report."""

    def __init__(self, rep, name):
        self.rep = rep
        self.prefix = "instance %s: " % name

    def info(self, text):
        self.rep.info(self.prefix + text)

    def result(self, name, fails, oktext):
        return self.rep.result(self.prefix + name, fails, oktext)


# ---------------------------------------------------------------------------------------
# JSON helpers

def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("key %r twice" % k)
        d[k] = v
    return d


def _no_constants(c):
    raise ValueError("%s is not JSON" % c)


def strict_json(b):
    return json.loads(b, object_pairs_hook=_no_dupes, parse_constant=_no_constants)


HEXCHARS = frozenset("0123456789abcdef")
DIGEST_PREFIX = b'{"type":"digest","id":'
DIGEST_MID = b',"digest":"'
DIGEST_ENDS = (b'"}\n', b'"}')


def is_int(v):
    return type(v) is int


def hex_bytes(v, n=None):
    """Lowercase hex -> bytes (n bytes if given), or raises Bad."""
    if type(v) is not str or len(v) % 2 or not HEXCHARS.issuperset(v):
        raise Bad("not lowercase hex")
    b = bytes.fromhex(v)
    if n is not None and len(b) != n:
        raise Bad("not %d bytes of hex" % n)
    return b


# ---------------------------------------------------------------------------------------
# Events: canonical encoding (docs/evidence-format.md, "Canonical encoding of an event")

TEXT, OPT_TEXT, INT, HEX, OPT_HEX, BOOL = range(6)
ENCODED = [
    ("id", INT), ("ts_ms", INT), ("ip_commit", OPT_HEX), ("client_key", TEXT),
    ("method", TEXT), ("host", OPT_TEXT), ("path", TEXT), ("query", OPT_TEXT),
    ("status", INT), ("bytes", INT), ("duration_us", INT), ("user_agent", OPT_TEXT),
    ("referer", OPT_TEXT), ("accept", OPT_TEXT), ("accept_language", OPT_TEXT),
    ("accept_encoding", OPT_TEXT), ("sec_fetch_site", OPT_TEXT), ("sec_fetch_mode", OPT_TEXT),
    ("sec_fetch_dest", OPT_TEXT), ("sec_fetch_user", OPT_TEXT), ("cookie_sent", BOOL),
    ("header_order", OPT_TEXT), ("kind", TEXT), ("token", OPT_HEX), ("robots_sha256", OPT_HEX),
]
KINDS = frozenset(["page", "image", "asset", "robots", "canary", "trap", "other"])
EVENT_TAG = b"faceprobe-event-v1\x00"
IP_TAG = b"faceprobe-ip-commit-v1\x00"


def canonical(e):
    """The canonical encoding of event `e` (a dict from events.jsonl); raises Bad."""
    out = [EVENT_TAG]
    for name, t in ENCODED:
        if name not in e:
            raise Bad("no field %s" % name)
        v = e[name]
        if v is None:
            if t in (TEXT, INT, BOOL):
                raise Bad("%s is null" % name)
            out.append(b"\x00")
            continue
        if t == INT:
            if not is_int(v):
                raise Bad("%s is not an integer" % name)
            try:
                b = v.to_bytes(8, "big", signed=True)
            except OverflowError:
                raise Bad("%s does not fit in 64 bits" % name)
        elif t in (TEXT, OPT_TEXT):
            if type(v) is not str:
                raise Bad("%s is not text" % name)
            try:
                b = v.encode("utf-8")
            except UnicodeEncodeError:
                raise Bad("%s is not valid Unicode" % name)
        elif t == BOOL:
            if type(v) is not bool:
                raise Bad("%s is not true/false" % name)
            b = b"\x01" if v else b"\x00"
        else:
            try:
                b = hex_bytes(v)
            except Bad:
                raise Bad("%s is not lowercase hex" % name)
        out.append(b"\x01" + len(b).to_bytes(4, "big") + b)
    if e["kind"] not in KINDS:
        raise Bad("kind %r is not one of %s" % (e["kind"], ", ".join(sorted(KINDS))))
    if e["ip_commit"] is not None and len(out[3]) != 1 + 4 + 32:
        raise Bad("ip_commit is not 32 bytes")
    if e["robots_sha256"] is not None and len(out[-1]) != 1 + 4 + 32:
        raise Bad("robots_sha256 is not 32 bytes")
    return b"".join(out)


def ip_commitment(ip, nonce):
    return hashlib.sha256(IP_TAG + ip.encode("utf-8") + b"\x00" + nonce).digest()


# ---------------------------------------------------------------------------------------
# The checks

# What each kind of folder must hold, and what it normally holds (a file missing from the
# second list is only noted). A fleet bundle keeps each instance's record in instances/NAME/.
SIGNED_FILES = ("manifest.json", "manifest.sig", "SHA256SUMS", "faceprobe-key.pub",
                "allowed_signers")
RECORD_FILES = ("events.jsonl", "chain.jsonl", "checkpoints.jsonl")
REPORT_FILES = ("rapport.pdf", "rapport.html", "report.pdf", "report.html")
HELP_FILES = ("VERIFY.txt", "VERIFIER.txt", "verify.py")
LAYOUTS = {
    "single": (SIGNED_FILES + RECORD_FILES,
               REPORT_FILES + ("flag.json", "site-images.csv", "canaries/index.csv") + HELP_FILES),
    "fleet": (SIGNED_FILES, ("flag.json",) + HELP_FILES),
    "instance": (("faceprobe-key.pub", "allowed_signers") + RECORD_FILES,
                 REPORT_FILES + ("site-images.csv", "canaries/index.csv")),
}


class Verifier:
    """The checks of one bundle, or of one instance's folder of a fleet bundle. For an
    instance, the key that must sign its checkpoints, its site and its chain object come from
    outside: from the fleet bundle's manifest.json, which the builder signed; the instance's
    own faceprobe-key.pub and allowed_signers must hold that key."""

    def __init__(self, bundle, rep, key=None, site=None, chain=None, instance=None,
                 where="manifest.json"):
        self.b = bundle
        self.r = rep
        self.key = key               # SigningKey of the checkpoints (and, at the top, manifest)
        self.manifest = None
        self.site = site
        self.chain_obj = chain       # manifest.json's account of chain.jsonl
        self.where = where           # where chain_obj lives, for failure lines
        self.instance = instance     # the instance's name, when checking one
        self.fleet = False           # the top folder of a fleet bundle
        self.instance_checks = []    # its instances to check: (index, name, path, site, key, chain)
        self.cps = []                # checkpoints that parsed: dicts with "_chain" bytes
        self.ev_ids = array("q")     # events.jsonl ids, ascending
        self.ev_data = bytearray()   # per event: digest + stored chain, 64 bytes each
        self.ev_info = {}            # id -> (kind, token hex, token_text, robots hex)
        self.summary = {}

    # -- layout, key ------------------------------------------------------------------
    def peek_format(self):
        """manifest.json's format, which decides what the layout must hold; None when it does
        not parse (manifest_files reports that)."""
        try:
            m = strict_json(self.b.read("manifest.json"))
        except Exception:
            return None
        return m.get("format") if type(m) is dict else None

    def layout(self):
        b = self.b
        what = "folder" if self.instance is not None else "bundle"
        required, usual = LAYOUTS["instance" if self.instance is not None else
                                  "fleet" if self.fleet else "single"]
        fails = list(b.layout_errors)
        for rel in required:
            if not b.has(rel):
                fails.append("%s is missing" % rel)
        for rel in b.junk:
            self.r.info("ignored (added by a desktop, not part of the bundle): %s" % show(rel))
        self.r.result(what, fails, "%s, %d files" % (show(b.name), len(b.files)))
        for rel in usual:
            if not b.has(rel):
                self.r.info("the %s has no %s" % (what, rel))

    def load_key(self):
        """faceprobe-key.pub and allowed_signers hold one key: the one given from outside
        (an instance's, by the fleet's manifest.json), or else the one they hold becomes the
        key of the checks."""
        fails = []
        given = self.key
        key = None
        try:
            text = self.b.read("faceprobe-key.pub").decode("utf-8")
            lines = [ln for ln in text.split("\n") if ln.strip()]
            if len(lines) != 1:
                raise Bad("it must hold exactly one key line")
            key = SigningKey(lines[0])
        except KeyError:
            fails.append("faceprobe-key.pub is missing")
        except (Bad, ValueError, UnicodeDecodeError) as e:
            fails.append("faceprobe-key.pub: %s" % e)
        if given is None:
            self.key = key
        elif key is not None and key.blob != given.blob:
            fails.append("faceprobe-key.pub holds the key %s, not %s, the key manifest.json "
                         "gives this instance" % (key.fingerprint, given.fingerprint))
        if self.key is not None and self.b.has("allowed_signers"):
            try:
                text = self.b.read("allowed_signers").decode("utf-8")
                lines = [ln for ln in text.split("\n")
                         if ln.strip() and not ln.lstrip().startswith("#")]
                if len(lines) != 1:
                    raise Bad("it must hold exactly one line")
                parts = lines[0].split()
                if len(parts) < 3 or parts[0] != PRINCIPAL:
                    raise Bad("its principal must be %r" % PRINCIPAL)
                opts = parts[1]
                want = 'namespaces="%s,%s"' % (EVIDENCE_NAMESPACE, CHECKPOINT_NAMESPACE)
                if opts != want:
                    raise Bad("its options must be %s" % want)
                _, blob = parse_pubkey_line(" ".join(parts[2:]))
                if blob != self.key.blob:
                    raise Bad("its key (%s) is not %s (%s)"
                              % (fingerprint(blob), "the key of faceprobe-key.pub" if given is None
                                 else "the key manifest.json gives this instance",
                                 self.key.fingerprint))
            except (Bad, ValueError, UnicodeDecodeError) as e:
                fails.append("allowed_signers: %s" % e)
        ok = self.r.result("key", fails, "faceprobe-key.pub is Ed25519 %s; allowed_signers holds it"
                           % (self.key.fingerprint if self.key else "?")
                           + ("" if given is None else "; manifest.json gives it this instance"))
        if self.key:
            self.r.info("signing key fingerprint: %s (compare it with the site's published key)"
                        % self.key.fingerprint)
        return ok

    # -- SHA256SUMS -------------------------------------------------------------------
    def sha256sums(self):
        b = self.b
        if not b.has("SHA256SUMS"):
            self.r.result("SHA256SUMS", ["SHA256SUMS is missing"], "")
            return
        fails = []
        listed = {}
        try:
            text = b.read("SHA256SUMS").decode("utf-8")
        except UnicodeDecodeError:
            self.r.result("SHA256SUMS", ["SHA256SUMS is not UTF-8 text"], "")
            return
        if text and not text.endswith("\n"):
            fails.append("SHA256SUMS: the last line has no newline")
        for no, line in enumerate(text.split("\n")[:-1] if text.endswith("\n")
                                  else text.split("\n"), 1):
            esc = line.startswith("\\")
            body = line[1:] if esc else line
            h, path = body[:64], body[66:]
            if len(body) < 67 or body[64:66] not in ("  ", " *") or not HEXCHARS.issuperset(h):
                fails.append("SHA256SUMS line %d is malformed" % no)
                continue
            if esc:
                path = path.replace("\\\\", "\x00").replace("\\n", "\n").replace("\x00", "\\")
            if path in listed:
                fails.append("%s is listed twice" % show(path))
            listed[path] = h
        for path in sorted(listed):
            if not b.has(path):
                fails.append("%s: listed but missing (removed)" % show(path))
            elif b.sha256(path)[0] != listed[path]:
                fails.append("%s: SHA-256 does not match" % show(path))
        for path in sorted(b.files):
            if path not in listed and path not in UNLISTED:
                fails.append("%s: present but not listed (added)" % show(path))
        for path in UNLISTED:
            if path in listed:
                fails.append("%s must not be listed in SHA256SUMS" % path)
        self.sums = listed
        self.r.result("SHA256SUMS", fails, "%d files listed, all present and matching"
                      % len(listed))

    # -- manifest ---------------------------------------------------------------------
    def manifest_files(self):
        b = self.b
        fails = []
        try:
            m = strict_json(b.read("manifest.json"))
            if type(m) is not dict:
                raise ValueError("not an object")
        except KeyError:
            self.r.result("manifest.json", ["manifest.json is missing"], "")
            return
        except (ValueError, UnicodeDecodeError) as e:
            self.r.result("manifest.json", ["manifest.json does not parse: %s" % e], "")
            return
        self.manifest = m
        want = FLEET_FORMAT if self.fleet else FORMAT
        if m.get("format") != want:
            fails.append("format is %r, not %r" % (m.get("format"), want))
        if not self.fleet:
            self.chain_obj = m.get("chain")
        site = m.get("site")
        if type(site) is not str or not site or "\n" in site:
            fails.append("site is missing or not one line of text")
        else:
            self.site = site
        if b.name and m.get("bundle") != b.name:
            text = "bundle id %r differs from the %s name %r" % (m.get("bundle"),
                   "zip's top folder" if isinstance(b, ZipBundle) else "folder", b.name)
            if isinstance(b, ZipBundle):
                fails.append(text)
            else:
                self.r.info(text + " (a renamed folder is not an error)")
        key = m.get("key")
        if type(key) is not dict:
            fails.append("key is missing")
        elif self.key is not None:
            try:
                _, blob = parse_pubkey_line(str(key.get("public")))
                if blob != self.key.blob:
                    fails.append("key.public (%s) is not the key of faceprobe-key.pub (%s)"
                                 % (fingerprint(blob), self.key.fingerprint))
            except Bad as e:
                fails.append("key.public: %s" % e)
            if key.get("fingerprint") != self.key.fingerprint:
                fails.append("key.fingerprint %r is not %s" % (key.get("fingerprint"),
                                                               self.key.fingerprint))
        files = m.get("files")
        listed = {}
        if type(files) is not list:
            fails.append("files is missing")
            files = []
        for i, f in enumerate(files):
            if type(f) is not dict or type(f.get("path")) is not str \
                    or type(f.get("sha256")) is not str or not is_int(f.get("bytes")):
                fails.append("files[%d] is malformed" % i)
                continue
            p = f["path"]
            if p in listed:
                fails.append("%s is listed twice" % show(p))
            listed[p] = f
        for p in sorted(listed):
            f = listed[p]
            if p in NOT_IN_MANIFEST:
                fails.append("%s must not be listed in manifest.json" % p)
            elif not b.has(p):
                fails.append("%s: listed but missing (removed)" % show(p))
            else:
                h, n = b.sha256(p)
                if h != f["sha256"]:
                    fails.append("%s: SHA-256 does not match" % show(p))
                if n != f["bytes"]:
                    fails.append("%s: size is %d bytes, manifest says %d" % (show(p), n, f["bytes"]))
        for p in sorted(b.files):
            if p not in listed and p not in NOT_IN_MANIFEST:
                fails.append("%s: present but not listed (added)" % show(p))
        self.manifest_listed = listed
        self.r.result("manifest.json", fails, "%d files, all present, SHA-256 and sizes match"
                      % len(listed))

    def manifest_sig(self):
        b = self.b
        if self.key is None or not b.has("manifest.sig") or not b.has("manifest.json"):
            self.r.result("manifest.sig", ["cannot be checked (key, manifest.json or "
                                           "manifest.sig missing)"], "")
            return
        armored = b.read("manifest.sig")
        message = b.read("manifest.json")
        why = sshsig_check(armored, message, self.key, EVIDENCE_NAMESPACE)
        self.r.result("manifest.sig", ["manifest.sig: %s" % why] if why else [],
                      "good signature of manifest.json, namespace %s, key %s (checked in Python)"
                      % (EVIDENCE_NAMESPACE, self.key.fingerprint))
        agree, text = ssh_keygen_opinion(self.key, armored, message, EVIDENCE_NAMESPACE)
        if agree is None:
            self.r.info("second opinion on manifest.sig skipped: %s" % text)
        else:
            self.r.result("manifest.sig (ssh-keygen)",
                          [] if agree else ["ssh-keygen -Y verify rejects it: %s" % show(text)],
                          "ssh-keygen -Y verify agrees: %s" % show(text))

    # -- checkpoints ------------------------------------------------------------------
    def checkpoints(self):
        b = self.b
        fmt_fails, sig_fails, order_fails = [], [], []
        cps = []
        other_site = []
        try:
            data = b.read("checkpoints.jsonl")
        except KeyError:
            self.r.result("checkpoints.jsonl", ["checkpoints.jsonl is missing"], "")
            return
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        elif data:
            fmt_fails.append("the last line has no newline")
        for no, line in enumerate(lines, 1):
            try:
                c = strict_json(line)
                if type(c) is not dict:
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as e:
                fmt_fails.append("line %d does not parse: %s" % (no, e))
                continue
            what = "line %d" % no
            try:
                for k in ("seq", "ts_ms", "event_id", "events"):
                    if not is_int(c.get(k)):
                        raise Bad("%s is not an integer" % k)
                what = "checkpoint seq %d (event %d)" % (c["seq"], c["event_id"])
                c["_chain"] = hex_bytes(c.get("chain"), 32)
                msg, sig = c.get("message"), c.get("signature")
                if type(msg) is not str or type(sig) is not str:
                    raise Bad("message or signature is not text")
                try:
                    msg.encode("utf-8")
                    sig.encode("utf-8")
                except UnicodeEncodeError:
                    raise Bad("message or signature is not valid Unicode")
                if "tsa" not in c:
                    raise Bad("no field tsa")
            except Bad as e:
                fmt_fails.append("%s: %s" % (what, e))
                continue
            # The site line is the site when the checkpoint was signed; normally manifest.json's.
            site = self.site
            ml = msg.split("\n")
            if len(ml) > 2 and ml[1].startswith("site: ") and ml[1][6:] != self.site:
                site = ml[1][6:]
                other_site.append(c["seq"])
                if len(other_site) == 1:
                    self.r.info("checkpoint seq %d was signed for site %s, manifest.json says %s "
                                "(the site's name changed?)" % (c["seq"], show(site),
                                                                show(self.site)))
            want = ("faceprobe checkpoint v1\nsite: %s\nseq: %d\nevent: %d\nchain: %s\n"
                    "time_ms: %d\nevents: %d\n" % (site, c["seq"], c["event_id"],
                                                   c["chain"], c["ts_ms"], c["events"]))
            if msg != want:
                got_l, want_l = msg.split("\n"), want.split("\n")
                diff = [w.split(":")[0] or "text after its last line" for g, w in
                        zip(got_l + [""] * 9, want_l) if g != w]
                if len(got_l) != len(want_l) and not diff:
                    diff = ["line count"]
                fmt_fails.append("%s: its message does not match its fields (%s)"
                                 % (what, ", ".join(show(d) for d in diff[:4])))
            if self.key is not None:
                why = sshsig_check(sig.encode("utf-8"), msg.encode("utf-8"), self.key,
                                   CHECKPOINT_NAMESPACE)
                if why:
                    sig_fails.append("%s: %s" % (what, why))
            if c["tsa"] is not None:
                self.r.info("%s carries a time-stamp token (tsa), not checked here" % what)
            cps.append(c)
        for prev, c in zip(cps, cps[1:]):
            if c["seq"] != prev["seq"] + 1:
                order_fails.append("seq %d follows seq %d (checkpoints %s)" % (
                    c["seq"], prev["seq"], "missing" if c["seq"] > prev["seq"] + 1 else
                    "out of order"))
            if c["event_id"] < prev["event_id"]:
                order_fails.append("checkpoint seq %d (event %d) comes after event %d"
                                   % (c["seq"], c["event_id"], prev["event_id"]))
            elif c["event_id"] == prev["event_id"] and c["_chain"] != prev["_chain"]:
                order_fails.append("checkpoints seq %d and %d sign different values for event %d"
                                   % (prev["seq"], c["seq"], c["event_id"]))
        if not cps and not fmt_fails:
            fmt_fails.append("no checkpoint at all")
        if len(other_site) > 1:
            self.r.info("%d checkpoints were signed for another site name than manifest.json's"
                        % len(other_site))
        self.cps = cps
        self.r.result("checkpoints.jsonl fields", fmt_fails,
                      "%d checkpoints, each message matches its fields" % len(cps))
        self.r.result("checkpoints.jsonl signatures", sig_fails if self.key else
                      ["cannot be checked without the key"],
                      "%d signatures good (namespace %s)" % (len(cps), CHECKPOINT_NAMESPACE))
        self.r.result("checkpoints.jsonl order", order_fails,
                      "seq runs without a gap, event ids ascend")
        if cps and self.key is not None:
            picks = cps if len(cps) <= 3 else [cps[0], cps[-1]]
            verdicts = []
            for c in picks:
                agree, text = ssh_keygen_opinion(self.key, c["signature"].encode("utf-8"),
                                                 c["message"].encode("utf-8"),
                                                 CHECKPOINT_NAMESPACE)
                if agree is None:
                    self.r.info("second opinion on checkpoints skipped: %s" % text)
                    return
                if not agree:
                    verdicts.append("checkpoint seq %d: ssh-keygen -Y verify rejects it: %s"
                                    % (c["seq"], show(text)))
            self.r.result("checkpoints.jsonl (ssh-keygen)", verdicts,
                          "ssh-keygen -Y verify agrees on seq %s"
                          % ", ".join(str(c["seq"]) for c in picks))

    # -- events -----------------------------------------------------------------------
    def events(self):
        fails, ip_fails = [], []
        try:
            f = self.b.open("events.jsonl")
        except KeyError:
            self.r.result("events.jsonl", ["events.jsonl is missing"], "")
            return
        ids, blob = array("q"), bytearray()
        opened = purged = 0
        last = None
        ordered = True
        with f:
            no = 0
            for line in f:
                no += 1
                if not line.endswith(b"\n"):
                    fails.append("line %d has no newline at its end" % no)
                try:
                    e = strict_json(line)
                    if type(e) is not dict:
                        raise ValueError("not an object")
                except (ValueError, UnicodeDecodeError) as ex:
                    fails.append("line %d does not parse: %s" % (no, ex))
                    continue
                eid = e.get("id")
                what = "event %s" % eid if is_int(eid) else "line %d" % no
                try:
                    enc = canonical(e)
                    stored = hex_bytes(e.get("chain"), 32)
                    for k in ("client_ip", "ip_nonce", "ip_pseudonym", "token_text"):
                        if k not in e:
                            raise Bad("no field %s" % k)
                        if e[k] is not None and type(e[k]) is not str:
                            raise Bad("%s is not text" % k)
                    nonce = None if e["ip_nonce"] is None else hex_bytes(e["ip_nonce"])
                    for k in ("client_ip", "ip_pseudonym", "token_text"):
                        if e[k] is not None:
                            try:
                                e[k].encode("utf-8")
                            except UnicodeEncodeError:
                                raise Bad("%s is not valid Unicode" % k)
                except Bad as ex:
                    fails.append("%s: %s" % (what, ex))
                    continue
                if eid == last:
                    fails.append("event %d appears twice" % eid)
                    continue
                if last is not None and eid < last:
                    fails.append("event %d comes after event %d (ids must ascend)" % (eid, last))
                    ordered = False
                last = eid if last is None or eid > last else last
                ip = e["client_ip"]
                if ip is not None:
                    if nonce is None or e["ip_commit"] is None:
                        ip_fails.append("event %d: client_ip is given without ip_nonce or "
                                        "ip_commit, so it cannot be checked" % eid)
                    elif ip_commitment(ip, nonce) != bytes.fromhex(e["ip_commit"]):
                        ip_fails.append("event %d: client_ip %s does not open its commitment "
                                        "ip_commit" % (eid, show(ip)))
                    else:
                        opened += 1
                else:
                    purged += 1
                if e["token"] is not None and e["token_text"] is not None:
                    tt = base64.urlsafe_b64encode(bytes.fromhex(e["token"])).rstrip(b"=")
                    if tt.decode() != e["token_text"]:
                        fails.append("event %d: token_text is not the token's base64url" % eid)
                if e["token"] is not None or e["robots_sha256"] is not None:
                    self.ev_info[eid] = (e["kind"], e["token"], e["token_text"],
                                         e["robots_sha256"])
                ids.append(eid)
                blob += hashlib.sha256(enc).digest()
                blob += stored
        if not ordered:
            order = sorted(range(len(ids)), key=ids.__getitem__)
            ids2, blob2 = array("q"), bytearray()
            for k in order:
                if ids2 and ids2[-1] == ids[k]:
                    fails.append("event %d appears twice" % ids[k])
                    continue
                ids2.append(ids[k])
                blob2 += blob[64 * k:64 * k + 64]
            ids, blob = ids2, blob2
        self.ev_ids, self.ev_data = ids, blob
        self.r.result("events.jsonl", fails, "%d events, ids ascend, each encoded and digested"
                      % len(ids))
        self.r.result("events.jsonl addresses", ip_fails,
                      ("%d addresses open their commitment, %d purged (pseudonym only)"
                       if self.instance is None else "%d addresses open their commitment, "
                       "%d given only as their commitment (addresses stay on the instance)")
                      % (opened, purged))

    def has_event(self, eid):
        i = bisect_left(self.ev_ids, eid)
        return i < len(self.ev_ids) and self.ev_ids[i] == eid

    def _compare(self, i, cur, stored, cp_at, broken, last_good, link_fails, cp_fails):
        """Compares the recomputed value after event i with its stored chain value and the
        checkpoints at i; reports the first place where they start to differ."""
        bad = []
        if stored is not None and stored != cur:
            bad.append("its chain value in events.jsonl")
        for c in cp_at.get(i, ()):
            if c["_chain"] != cur:
                bad.append("signed checkpoint seq %d" % c["seq"])
        if not bad:
            if broken is not None:
                b0, target, idx, later, what, lastbad = broken
                if later == 0:
                    target[idx] += ("; the chain matches again at event %d, so "
                                    "only %s (event %d) is wrong"
                                    % (i, what, b0))
                else:
                    target.append("... and %d later values differ too, up to "
                                  "event %d (matches again at event %d)"
                                  % (later, lastbad, i))
                broken = None
            last_good = i
        elif broken is None:
            target = link_fails if stored is not None else cp_fails
            lo = last_good + 1
            line = lo - self.start_after + 1       # the start line is line 1
            if lo == i:
                where = "event %d itself (line %d of chain.jsonl%s)" % (
                    i, line, ", or its fields in events.jsonl" if stored is not None else "")
            else:
                where = "event %d (line %d of chain.jsonl; the change is in the lines for events " \
                        "%d to %d%s)" % (lo, line, lo, i, ", or in the fields of event %d in "
                                         "events.jsonl" % i if stored is not None else "")
            target.append("event %d: recomputed chain value differs from %s; the "
                          "chain last matched after event %d; first suspect line: "
                          "%s" % (i, " and ".join(bad), last_good, where))
            broken = [i, target, len(target) - 1, 0, " and ".join(bad), i]
        else:
            broken[3] += 1
            broken[5] = i

        return broken, last_good

    # -- chain ------------------------------------------------------------------------
    def chain(self):
        rep = self.r
        struct_fails, link_fails, cp_fails, member_fails = [], [], [], []
        try:
            f = self.b.open("chain.jsonl")
        except KeyError:
            rep.result("chain.jsonl", ["chain.jsonl is missing"], "")
            return
        cp_at = {}
        for c in self.cps:
            cp_at.setdefault(c["event_id"], []).append(c)
        ev_ids, ev_data = self.ev_ids, self.ev_data
        n_ev = len(ev_ids)
        sha256 = hashlib.sha256
        loads = json.loads
        fromhex = bytes.fromhex
        cp_ids = frozenset(cp_at)
        with f:
            head = f.readline()
            try:
                s = strict_json(head)
                if type(s) is not dict or s.get("type") != "start":
                    raise Bad("the first line is not a start line")
                A = s.get("after")
                if not is_int(A) or A < 0:
                    raise Bad("start: after is not an integer >= 0")
                cur = hex_bytes(s.get("chain"), 32)
                source = s.get("source")
                if source not in ("checkpoint", "genesis", "anchor"):
                    raise Bad("start: source %r is not checkpoint, genesis or anchor" % source)
            except (Bad, ValueError, UnicodeDecodeError) as e:
                rep.result("chain.jsonl structure", ["line 1: %s" % e], "")
                return
            self.start_after = A
            if source == "genesis" and (A != 0 or cur != bytes(32)):
                struct_fails.append("start: a genesis start must be after 0 with 32 zero bytes")
            if source == "checkpoint" and A not in cp_at:
                cp_fails.append("start: source is checkpoint but no checkpoint is at event %d" % A)
            for c in cp_at.get(A, ()):
                if c["_chain"] != cur:
                    cp_fails.append("start value differs from checkpoint seq %d at event %d"
                                    % (c["seq"], A))
            expect = A + 1
            ei = bisect_left(ev_ids, expect)   # next event of events.jsonl to meet
            for i in range(ei):
                member_fails.append("event %d of events.jsonl lies before the segment (after %d)"
                                    % (ev_ids[i], A))
            last_good = A            # last id where the recomputed value matched
            broken = None            # while values differ: [id, list, index, later, what, last]
            end = None
            lineno = 1
            actor = 0
            for line in f:
                lineno += 1
                # Fast path for the compact digest line that faceprobe writes; anything else
                # (other spacing, key order) goes through json.loads, with the same result.
                if line[:22] == DIGEST_PREFIX:
                    j = line.find(b",", 22)
                    num = line[22:j]
                    h = line[j + 11:j + 75]
                    if (j > 22 and num.isdigit() and (num[0] != 48 or j == 23)
                            and line[j:j + 11] == DIGEST_MID and line[j + 75:] in DIGEST_ENDS
                            and len(h) == 64 and h.lower() == h):
                        try:
                            d = unhexlify(h)
                        except ValueError:
                            d = None
                        if d is not None:
                            i = int(num)
                            if i != expect:
                                struct_fails.append("line %d: event %d where event %d was due "
                                                    "(ids must run without a gap); the chain "
                                                    "cannot be followed further"
                                                    % (lineno, i, expect))
                                break
                            expect = i + 1
                            if ei < n_ev and ev_ids[ei] <= i:
                                while ei < n_ev and ev_ids[ei] <= i:
                                    member_fails.append(
                                        "event %d of events.jsonl has no event line in "
                                        "chain.jsonl%s" % (ev_ids[ei], " (a digest line stands "
                                        "in its place)" if ev_ids[ei] == i else ""))
                                    ei += 1
                            cur = sha256(cur + d).digest()
                            if i in cp_ids:
                                stored = None
                                (broken, last_good) = self._compare(
                                    i, cur, None, cp_at, broken, last_good, link_fails, cp_fails)
                            continue
                try:
                    o = loads(line)
                    t = o["type"]
                    if t == "digest":
                        i = o["id"]
                        h = o["digest"]
                        d = fromhex(h)
                        if len(h) != 64 or len(d) != 32 or h.lower() != h:
                            raise Bad("digest is not 32 bytes of lowercase hex")
                    elif t == "event":
                        i = o["id"]
                        d = None
                    elif t == "end":
                        end = o
                        break
                    else:
                        raise Bad("unknown line type %r" % (t,))
                    if type(i) is not int:
                        raise Bad("id is not an integer")
                except (Bad, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
                    struct_fails.append("line %d: %s" % (lineno, e))
                    break
                if i != expect:
                    struct_fails.append("line %d: event %d where event %d was due (ids must run "
                                        "without a gap); the chain cannot be followed further"
                                        % (lineno, i, expect))
                    break
                expect = i + 1
                stored = None
                if d is None:
                    actor += 1
                    if ei < n_ev and ev_ids[ei] == i:
                        d = bytes(ev_data[64 * ei:64 * ei + 32])
                        stored = bytes(ev_data[64 * ei + 32:64 * ei + 64])
                        ei += 1
                    else:
                        member_fails.append("chain.jsonl line %d: event %d has no event in "
                                            "events.jsonl" % (lineno, i))
                        d = bytes(32)
                elif ei < n_ev and ev_ids[ei] <= i:
                    while ei < n_ev and ev_ids[ei] <= i:
                        member_fails.append("event %d of events.jsonl has no event line in "
                                            "chain.jsonl%s" % (ev_ids[ei], " (a digest line "
                                            "stands in its place)" if ev_ids[ei] == i else ""))
                        ei += 1
                cur = sha256(cur + d).digest()
                if stored is not None or i in cp_ids:
                    (broken, last_good) = self._compare(
                        i, cur, stored, cp_at, broken, last_good, link_fails, cp_fails)
            if broken is not None and broken[3]:
                broken[1].append("... and %d later values differ too, up to event %d"
                                 % (broken[3], broken[5]))
            trailing = f.readline() if end is not None else b""
            if trailing:
                struct_fails.append("lines after the end line")
        while ei < n_ev:
            member_fails.append("event %d of events.jsonl is not in the chain segment"
                                % ev_ids[ei])
            ei += 1
        E = None
        if end is None:
            if not struct_fails:
                struct_fails.append("no end line")
        else:
            try:
                E = end.get("id")
                endv = hex_bytes(end.get("chain"), 32)
                if not is_int(E):
                    raise Bad("end: id is not an integer")
                if E != expect - 1:
                    raise Bad("end: id %d is not the last event %d" % (E, expect - 1))
                if endv != cur:
                    link_fails.append("end: recomputed value after event %d differs from the end "
                                      "line; the chain last matched after event %d; first "
                                      "suspect line: event %d (line %d of chain.jsonl)"
                                      % (E, last_good, last_good + 1, last_good + 1 - A + 1))
                if E not in cp_at:
                    cp_fails.append("no signed checkpoint at the end event %d" % E)
            except Bad as e:
                struct_fails.append(str(e))
                E = None
        if E is not None:
            for c in self.cps:
                if not A <= c["event_id"] <= E:
                    cp_fails.append("checkpoint seq %d (event %d) lies outside the segment %d..%d"
                                    % (c["seq"], c["event_id"], A, E))
        m = self.chain_obj
        if type(m) is dict and E is not None:
            for k, v in (("start_after", A), ("start_source", source), ("end", E),
                         ("end_chain", end.get("chain")), ("events", n_ev)):
                if m.get(k) != v:
                    struct_fails.append("%s chain.%s is %r, the files say %r"
                                        % (self.where, k, m.get(k), v))
            if actor != n_ev:
                struct_fails.append("%d event lines, but %d events in events.jsonl" % (actor, n_ev))
        elif E is not None:
            struct_fails.append("%s has no chain object" % self.where)
        rep.result("chain.jsonl structure", struct_fails,
                   "start after event %d (%s), %d lines without a gap, end at event %s"
                   % (A, source, lineno - 1, E))
        rep.result("chain.jsonl events", member_fails,
                   "%d event lines, each with its event in events.jsonl and back" % actor)
        rep.result("chain.jsonl links", link_fails,
                   "every link recomputed; each actor event's stored chain value matches")
        rep.result("chain.jsonl checkpoints", cp_fails,
                   "start, end and %d checkpoints inside the segment match the recomputed chain"
                   % len(self.cps))

    # -- canaries, robots, site images --------------------------------------------------
    def _csv(self, rel):
        text = self.b.read(rel).decode("utf-8")
        return list(csv.reader(io.StringIO(text, newline="")))

    def _ids(self, field, where, fails):
        out = []
        for tok in field.split():
            try:
                out.append(int(tok))
            except ValueError:
                fails.append("%s: event id %s is not a number" % (where, show(tok)))
        return out

    def canaries(self):
        rel = "canaries/index.csv"
        if not self.b.has(rel):
            if any(p.startswith("canaries/") for p in self.b.files):
                self.r.result(rel, ["%s is missing but canaries/ holds files" % rel], "")
            return
        fails = []
        try:
            rows = self._csv(rel)
        except (UnicodeDecodeError, csv.Error) as e:
            self.r.result(rel, ["does not parse: %s" % e], "")
            return
        need = ["token", "file", "sha256", "event_ids"]
        if not rows or not set(need) <= set(rows[0]):
            self.r.result(rel, ["its header lacks one of the columns %s" % ", ".join(need)], "")
            return
        col = dict((name, rows[0].index(name)) for name in need)
        listed = set()
        unrendered = []
        for no, row in enumerate(rows[1:], 2):
            if len(row) != len(rows[0]):
                fails.append("line %d has %d fields, not %d" % (no, len(row), len(rows[0])))
                continue
            token, path, h = row[col["token"]], row[col["file"]], row[col["sha256"]]
            if token.startswith("'"):      # the spreadsheet guard, if a token starts with -
                token = token[1:]
            if not path and not h:
                unrendered.append(token)
            else:
                listed.add(path)
                if not self.b.has(path):
                    fails.append("%s (token %s): file missing" % (show(path), show(token)))
                elif self.b.sha256(path)[0] != h:
                    fails.append("%s (token %s): SHA-256 does not match the index"
                                 % (show(path), show(token)))
            for eid in self._ids(row[col["event_ids"]], "%s line %d" % (rel, no), fails):
                info = self.ev_info.get(eid, (None, None, None, None))
                if not self.has_event(eid):
                    fails.append("token %s: event %d is not in events.jsonl" % (show(token), eid))
                elif token not in (info[1], info[2]):
                    fails.append("token %s: event %d fetched another token" % (show(token), eid))
        if unrendered:
            self.r.info("%d canaries have no image in the bundle (not re-rendered): %s"
                        % (len(unrendered), ", ".join(show(t) for t in unrendered[:5])))
        for p in sorted(self.b.files):
            if p.startswith("canaries/") and p != rel and p not in listed:
                fails.append("%s is not in the index" % show(p))
        self.r.result(rel, fails, "%d canaries, each file present with its SHA-256"
                      % (len(rows) - 1))

    def robots(self):
        fails = []
        n = 0
        for p in sorted(self.b.files):
            if p.startswith("robots/"):
                n += 1
                name = p[len("robots/"):]
                if not name.endswith(".txt") or self.b.sha256(p)[0] != name[:-4]:
                    fails.append("%s: its SHA-256 is not its name" % show(p))
        for eid in sorted(self.ev_info):
            r = self.ev_info[eid][3]
            if r is not None and not self.b.has("robots/%s.txt" % r):
                fails.append("event %d: robots.txt version %s is not in robots/" % (eid, r))
        self.r.result("robots", fails, "%d robots.txt versions, each named by its SHA-256" % n)

    def site_images(self):
        rel = "site-images.csv"
        if not self.b.has(rel):
            return
        fails = []
        try:
            rows = self._csv(rel)
        except (UnicodeDecodeError, csv.Error) as e:
            self.r.result(rel, ["does not parse: %s" % e], "")
            return
        if not rows or "event_ids" not in rows[0]:
            self.r.result(rel, ["its header has no event_ids column"], "")
            return
        at = rows[0].index("event_ids")
        for no, row in enumerate(rows[1:], 2):
            if len(row) != len(rows[0]):
                fails.append("line %d has %d fields, not %d" % (no, len(row), len(rows[0])))
                continue
            for eid in self._ids(row[at], "line %d" % no, fails):
                if not self.has_event(eid):
                    fails.append("line %d: event %d is not in events.jsonl" % (no, eid))
        self.r.result(rel, fails, "%d images, their events all in events.jsonl" % (len(rows) - 1))

    # -- the instances of a fleet bundle ----------------------------------------------
    def instances(self):
        """manifest.json's instances: each names its folder, instances/NAME, its site and its
        key, and every folder under instances/ is one of them. Those whose name and path hold
        are then checked as bundles of their own."""
        m = self.manifest
        if type(m) is not dict:
            self.r.result("instances", ["cannot be checked (manifest.json does not parse)"], "")
            return
        fails = []
        listed = m.get("instances")
        if type(listed) is not list:
            fails.append("manifest.json has no list of instances")
            listed = []
        elif not listed:
            fails.append("manifest.json lists no instance")
        names = set()
        for i, inst in enumerate(listed):
            where = "instances[%d]" % i
            if type(inst) is not dict:
                fails.append("%s is not an object" % where)
                continue
            name = inst.get("instance")
            if type(name) is not str or not INSTANCE_NAME.fullmatch(name):
                fails.append("%s: instance %s is not a name of 1 to 64 characters A-Z a-z "
                             "0-9 . _ - starting with a letter or digit"
                             % (where, show("%r" % (name,))))
                continue
            if name in names:
                fails.append("%s: instance %s is listed twice" % (where, name))
                continue
            names.add(name)
            where = "instances[%d] (%s)" % (i, name)
            path = inst.get("path")
            if path != "instances/" + name:
                fails.append("%s: path %s is not instances/%s, so its folder is not checked"
                             % (where, show("%r" % (path,)), name))
                continue
            site = inst.get("site")
            if type(site) is not str or not site or "\n" in site:
                fails.append("%s: site is missing or not one line of text" % where)
                site = None
            key = None
            k = inst.get("key")
            if type(k) is not dict:
                fails.append("%s: key is missing" % where)
            else:
                try:
                    key = SigningKey(str(k.get("public")))
                except (Bad, ValueError) as e:
                    fails.append("%s: key.public: %s" % (where, e))
                if key is not None and k.get("fingerprint") != key.fingerprint:
                    fails.append("%s: key.fingerprint %s is not %s"
                                 % (where, show("%r" % (k.get("fingerprint"),)), key.fingerprint))
            self.instance_checks.append((i, name, path, site, key, inst.get("chain")))
        strays = []
        unchecked = []
        for p in sorted(self.b.files):
            if p.startswith("instances/"):
                top, sep, _ = p[len("instances/"):].partition("/")
                if not sep:
                    fails.append("%s: a file outside every instance's folder" % show(p))
                elif top not in names and top not in strays:
                    strays.append(top)
                    fails.append("instances/%s/: a folder that is not an instance of "
                                 "manifest.json" % show(top))
            elif p in RECORD_FILES or p == "site-images.csv" or p.startswith(("canaries/",
                                                                                "robots/")):
                unchecked.append(p)
        if unchecked:
            self.r.info("listed but not checked, since a fleet bundle keeps each instance's "
                        "record in its folder: %s%s" % (", ".join(show(p) for p in unchecked[:5]),
                                                        ", ..." if len(unchecked) > 5 else ""))
        shown = [c[1] for c in self.instance_checks]
        self.r.result("instances", fails, "%d instances (%s), every folder under instances/ "
                      "one of them" % (len(shown), ", ".join(shown[:10] + (["..."] if
                                                                         len(shown) > 10 else []))))

    def run(self):
        """The checks in order; a fleet bundle's instances follow its top folder's checks, in
        the order of manifest.json, each with its name before every line."""
        if self.instance is None:
            self.fleet = self.peek_format() == FLEET_FORMAT
            steps = [(self.layout, "bundle"), (self.load_key, "key"),
                     (self.sha256sums, "SHA256SUMS"), (self.manifest_files, "manifest.json"),
                     (self.manifest_sig, "manifest.sig")]
        else:
            steps = [(self.layout, "folder"), (self.load_key, "key")]
        if self.fleet:
            steps.append((self.instances, "instances"))
        else:
            steps += [(self.checkpoints, "checkpoints.jsonl"), (self.events, "events.jsonl"),
                      (self.chain, "chain.jsonl"), (self.canaries, "canaries/index.csv"),
                      (self.robots, "robots"), (self.site_images, "site-images.csv")]
        for step, name in steps:
            try:
                step()
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as e:   # a file so malformed that a check could not finish
                self.r.result(name, ["the check could not finish: %s: %s"
                                     % (type(e).__name__, show(e))], "")
        for i, name, path, site, key, chain in self.instance_checks:
            Verifier(SubBundle(self.b, path + "/"), InstanceReport(self.r, name), key=key,
                     site=site, chain=chain, instance=name,
                     where="manifest.json instances[%d]" % i).run()


USAGE = """usage: python3 verify.py [BUNDLE_DIR_OR_ZIP]

Checks a faceprobe evidence bundle, single or fleet (a folder, or the zip holding it).
With no argument, checks the folder verify.py sits in. Exit status: 0 all checks hold,
1 a check failed, 2 usage error."""


def main(argv):
    try:
        sys.stdout.reconfigure(errors="backslashreplace")
    except Exception:
        pass
    args = argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(args) > 1 or (args and args[0].startswith("-") and not os.path.exists(args[0])):
        print(USAGE, file=sys.stderr)
        return 2
    path = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(path):
        bundle = DirBundle(path)
    elif os.path.isfile(path):
        try:
            bundle = ZipBundle(path)
        except (zipfile.BadZipFile, OSError) as e:
            print("verify.py: %s is neither a folder nor a zip archive (%s)" % (path, e),
                  file=sys.stderr)
            return 2
    else:
        print("verify.py: %s: no such folder or file" % path, file=sys.stderr)
        return 2
    print("Checking the faceprobe evidence bundle %s" % show(os.path.abspath(path)))
    rep = Report()
    try:
        Verifier(bundle, rep).run()
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as e:
        rep.checks += 1
        rep.failed += 1
        print("FAIL bundle: a file cannot be read: %s" % e)
    if rep.failed:
        print("RESULT: FAIL: %d of %d checks failed; the bundle is not intact or not consistent"
              % (rep.failed, rep.checks))
        return 1
    print("RESULT: OK: all %d checks hold" % rep.checks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
