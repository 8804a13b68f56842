#!/usr/bin/env python3
"""Fetches the published SD 1.5 / ControlNet / CLIP weights of hf_catalogue.json (see --help).

Every file is downloaded from <endpoint>/<repository>/resolve/<revision>/<path> to a `.part`
file next to its destination, checked (size, sha256) and renamed into place, so the store never
holds a half-written or unverified file. A file whose sha256 the catalogue does not know is
trusted on first use: its sha256 goes into <store>/.hf-lock.json and later fetches must match.
config.pbtxt is written once a model's files are all present, so the services only see complete
models. Logs go to stderr; stdout carries the store path (or the --list/--check/--dry-run report).

Standard library only (runs before any Python package is installed).
"""
import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOGUE = os.path.join(HERE, "hf_catalogue.json")
DEFAULT_ENDPOINT = "https://huggingface.co"
LOCK_NAME = ".hf-lock.json"
CHUNK = 1 << 20


def log(msg):
    print(f"fetch-hf: {msg}", file=sys.stderr, flush=True)


class FetchError(Exception):
    """A file could not be fetched or verified; the message says what to do."""


def model_store():
    env = os.environ.get("IMGINTERP_MODEL_STORE")
    if env:
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "image-interpreter", "models")


def endpoint():
    return (os.environ.get("IMGINTERP_HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_if_changed(path, text):
    data = text.encode("utf-8")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


# ----------------------------------------------------------------------------------------------
# The catalogue and where its files go


class FileJob:
    """One catalogue file: where it comes from, what it must hash to, where it goes."""

    def __init__(self, model, spec, variant, store, base):
        self.model = model
        chosen = spec
        if variant and variant in spec.get("variants", {}):
            chosen = dict(spec["variants"][variant])
        self.variant = variant if chosen is not spec else ""
        self.path = chosen["path"]
        self.revision = (chosen.get("revision") or spec.get("revision")
                         or model.get("revision", "main"))
        self.sha256 = (chosen.get("sha256") or "").lower() or None
        self.size = chosen.get("size")
        self.repository = model["repository"]
        # The canonical name: the services look for diffusion_pytorch_model.safetensors, not the
        # .fp16 variant's name (the loader converts F16 to float32 either way).
        self.dest_rel = os.path.join(base, spec["path"])
        self.dest = os.path.join(store, self.dest_rel)
        self.key = f"{self.repository}@{self.revision}/{self.path}"

    def url(self, base_url):
        if base_url.startswith("file:"):
            revision = self.revision
        else:  # refs/pr/1 is one path segment on the Hub
            revision = urllib.parse.quote(self.revision, safe="")
        return f"{base_url}/{self.repository}/resolve/{revision}/{self.path}"


def load_catalogue(path):
    with open(path) as f:
        catalogue = json.load(f)
    by_name = {m["name"]: m for m in catalogue["models"]}
    for m in catalogue["models"]:
        if m["kind"] == "controlnet" and by_name.get(m["pipeline"], {}).get("kind") != "pipeline":
            raise SystemExit(f"fetch-hf: {path}: {m['name']} names pipeline {m['pipeline']}, "
                             "which is not a pipeline entry")
    return catalogue, by_name


def model_root(model, by_name):
    """The model folder (relative to the store) the entry belongs to."""
    if model["kind"] == "controlnet":
        pipeline = by_name[model["pipeline"]]
        return os.path.join(pipeline["family"], pipeline["model"])
    return os.path.join(model["family"], model["model"])


def version_base(model, by_name):
    """Where the entry's files go, relative to the store."""
    base = os.path.join(model_root(model, by_name), "1")
    if model["kind"] == "controlnet":
        base = os.path.join(base, "controlnet", model["folder"])
    return base


def jobs_of(model, by_name, store, variant):
    base = version_base(model, by_name)
    return [FileJob(model, spec, variant, store, base) for spec in model["files"]]


# ----------------------------------------------------------------------------------------------
# The lock file: sha256 of files trusted on first use, and what each destination holds


class Lock:
    def __init__(self, store):
        self.path = os.path.join(store, LOCK_NAME)
        self.data = {"files": {}, "destinations": {}}
        try:
            with open(self.path) as f:
                loaded = json.load(f)
            self.data["files"].update(loaded.get("files", {}))
            self.data["destinations"].update(loaded.get("destinations", {}))
        except FileNotFoundError:
            pass
        except ValueError as e:
            raise SystemExit(f"fetch-hf: {self.path} is not valid JSON ({e}); fix or delete it")

    def trusted_sha(self, key):
        return self.data["files"].get(key, {}).get("sha256")

    def trust(self, job, sha, size, url):
        self.data["files"][job.key] = {
            "sha256": sha, "size": size, "url": url,
            "first_fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}

    def destination(self, job):
        return self.data["destinations"].get(job.dest_rel)

    def record_destination(self, job, sha):
        st = os.stat(job.dest)
        self.data["destinations"][job.dest_rel] = {
            "key": job.key, "sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def save(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        body = dict(self.data)
        body["comment"] = ("Written by deploy/models/fetch-hf.sh. 'files': sha256 of downloads "
                           "whose sha256 hf_catalogue.json does not give, trusted on first use "
                           "and enforced on later fetches (delete an entry to trust a new "
                           "upstream file). 'destinations': what each store file was verified "
                           "as, so unchanged files are not hashed again.")
        write_if_changed(self.path, json.dumps(body, indent=2, sort_keys=True) + "\n")


def expected_sha(job, lock):
    return job.sha256 or lock.trusted_sha(job.key)


def is_present(job, lock):
    """True when the destination already holds the right file (hashing only when needed)."""
    if not os.path.isfile(job.dest):
        return False
    st = os.stat(job.dest)
    if job.size is not None and st.st_size != job.size:
        log(f"{job.dest_rel}: size {st.st_size} differs from {job.size}: fetching again")
        return False
    want = expected_sha(job, lock)
    record = lock.destination(job)
    if (record and record.get("key") == job.key and record.get("size") == st.st_size
            and record.get("mtime_ns") == st.st_mtime_ns
            and (want is None or record.get("sha256") == want)):
        return True
    if record and record.get("key") != job.key:
        log(f"{job.dest_rel}: holds {record.get('key')}, {job.key} is wanted: fetching again")
        return False
    got = sha256_of(job.dest)
    if want is None:
        # A file put there by hand, with nothing to check it against.
        log(f"TRUST ON FIRST USE: {job.dest_rel} was already in the store and {job.key} has no "
            f"sha256 in the catalogue: recording {got} in {lock.path}")
        lock.trust(job, got, st.st_size, "(present in the store)")
    elif got != want:
        log(f"{job.dest_rel}: sha256 {got} differs from {want}: fetching again")
        return False
    lock.record_destination(job, got)
    return True


# ----------------------------------------------------------------------------------------------
# Downloading


def how_to_supply(job, url):
    return (f"  to supply it by hand: copy the file to {job.dest}\n"
            f"  or set IMGINTERP_HF_ENDPOINT to a mirror, or to a file:// folder holding "
            f"{job.repository}/resolve/{job.revision}/{job.path}, and run again\n"
            f"  (URL: {url})")


def _open_http(url, offset):
    request = urllib.request.Request(url, headers={"User-Agent": "image-interpreter-fetch-hf/1"})
    token = os.environ.get("HF_TOKEN")
    if token:
        # Unredirected: the Hub redirects downloads to a CDN host that must not see the token.
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=60)


def _download_http(url, part):
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    try:
        response = _open_http(url, offset)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is already complete (or bogus): start over
            os.remove(part)
            return _download_http(url, part)
        raise
    with response:
        resumed = offset and response.status == 206
        if offset and not resumed:
            log(f"  server ignored the resume request: downloading {url} from the start")
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = f" of {(int(length) + start) >> 20} MiB" if length else ""
        with open(part, "ab" if resumed else "wb") as out:
            done = last_report = start
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                done += len(chunk)
                if done - last_report >= (256 << 20):
                    last_report = done
                    log(f"  {done >> 20} MiB{total}")


def _download_file_url(url, part):
    source = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{source} does not exist")
    shutil.copyfile(source, part)


def fetch(job, lock, base_url):
    """Downloads, verifies and renames one file into place; raises FetchError."""
    url = job.url(base_url)
    os.makedirs(os.path.dirname(job.dest), exist_ok=True)
    part = job.dest + ".part"
    log(f"{job.dest_rel} <- {url}")
    try:
        if url.startswith("file:"):
            _download_file_url(url, part)
        else:
            _download_http(url, part)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else str(
            getattr(e, "reason", e))
        if isinstance(e, urllib.error.HTTPError) and os.path.isfile(part):
            os.remove(part)  # an error page is not a partial download
        raise FetchError(f"cannot download {job.key} for {job.model['name']} ({reason})\n"
                         f"  destination: {job.dest}\n" + how_to_supply(job, url))
    size = os.path.getsize(part)
    got = sha256_of(part)
    want = expected_sha(job, lock)
    problem = None
    if job.size is not None and size != job.size:
        problem = f"size {size} but the catalogue says {job.size}"
    elif job.sha256 and got != job.sha256:
        problem = f"sha256 {got} but the catalogue says {job.sha256}"
    elif want and got != want:
        problem = (f"sha256 {got} but {lock.path} recorded {want} on first use: the upstream "
                   "file changed or the download is corrupt (if the change is legitimate, "
                   "delete that entry from the lock file)")
    if problem:
        os.remove(part)
        raise FetchError(f"{job.key} from {url} does not verify: {problem}; deleted the download, "
                         f"nothing was written to {job.dest}")
    if want is None:
        log(f"TRUST ON FIRST USE: {job.key} has no sha256 in the catalogue; recorded the sha256 "
            f"of this download, {got}, in {lock.path}; later fetches must match it")
        lock.trust(job, got, size, url)
    os.replace(part, job.dest)
    lock.record_destination(job, got)
    lock.save()


# ----------------------------------------------------------------------------------------------
# config.pbtxt


def pbtxt_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def complete(model, by_name, store, variant):
    return all(os.path.isfile(j.dest) for j in jobs_of(model, by_name, store, variant))


def write_configs(catalogue, by_name, store, variant):
    """config.pbtxt of every complete pipeline (with its present ControlNets) and CLIP model."""
    for model in catalogue["models"]:
        if model["kind"] == "controlnet" or not complete(model, by_name, store, variant):
            continue
        root = os.path.join(store, model_root(model, by_name))
        sources = [f"{endpoint()}/{model['repository']} @ {model['revision']}"]
        if model.get("original_repository"):
            sources[0] += f" (copy of {model['original_repository']})"
        licences = [model["licence"]]
        parameters = {}
        if model["kind"] == "pipeline":
            for cn in catalogue["models"]:
                if cn["kind"] != "controlnet" or cn["pipeline"] != model["name"]:
                    continue
                if not complete(cn, by_name, store, variant):
                    continue
                parameters[f"controlnet.{cn['prior_kind']}"] = f"controlnet/{cn['folder']}"
                sources.append(f"controlnet/{cn['folder']}: {cn['repository']} @ {cn['revision']}")
                licences.append(f"controlnet/{cn['folder']}: {cn['licence']}")
        lines = [f"name: {pbtxt_string(model['model'])}", 'backend: "native"',
                 f"description: {pbtxt_string(model.get('description', ''))}",
                 f"source: {pbtxt_string('; '.join(sources))}",
                 f"licence: {pbtxt_string('; '.join(licences))}"]
        for key, value in sorted(model.get("config", {}).items()):
            lines.append(f"{key}: {value}")
        for key in sorted(parameters):
            lines.append(f"parameters {{ key: {pbtxt_string(key)} value: "
                         f"{pbtxt_string(parameters[key])} }}")
        path = os.path.join(root, "config.pbtxt")
        if write_if_changed(path, "\n".join(lines) + "\n"):
            log(f"wrote {os.path.relpath(path, store)}"
                + (f" ({', '.join(sorted(parameters))})" if parameters else ""))


# ----------------------------------------------------------------------------------------------
# Commands


def cmd_list(catalogue, by_name):
    for m in catalogue["models"]:
        known = sum(1 for f in m["files"] if f.get("sha256"))
        where = version_base(m, by_name)
        extra = f"\tprior {m['prior_kind']}" if m["kind"] == "controlnet" else ""
        print(f"{m['name']}\t{m['kind']}\t{m['repository']}@{m['revision']}\t{where}/\t"
              f"{m['licence']}\t{len(m['files'])} files, {known} with sha256{extra}")
    return 0


def cmd_check(selected, by_name, store, variant, base_url):
    missing_any = False
    for m in selected:
        jobs = jobs_of(m, by_name, store, variant)
        missing = [j for j in jobs if not os.path.isfile(j.dest)]
        root = os.path.join(store, model_root(m, by_name))
        config = os.path.join(root, "config.pbtxt")
        if not missing:
            state = "complete" if os.path.isfile(config) or m["kind"] == "controlnet" else \
                "complete (run fetch-hf.sh to write config.pbtxt)"
            print(f"{m['name']}: {state} ({version_base(m, by_name)}/)")
            continue
        missing_any = True
        print(f"{m['name']}: {len(missing)} of {len(jobs)} files missing "
              f"({m['repository']}@{m['revision']})")
        for j in missing:
            print(f"  missing {j.dest}")
            print(f"     from {j.url(base_url)}")
    return 1 if missing_any else 0


def cmd_dry_run(selected, by_name, store, variant, base_url):
    for m in selected:
        for j in jobs_of(m, by_name, store, variant):
            state = "present" if os.path.isfile(j.dest) else "fetch"
            sha = j.sha256 or "sha256 unknown (trust on first use)"
            print(f"{state}\t{j.url(base_url)}\t{j.dest}\t{sha}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="fetch-hf.sh",
        description="Fetch the Stable Diffusion 1.5, ControlNet v1.1 and CLIP weights listed in "
                    "deploy/models/hf_catalogue.json from Hugging Face into the model store, in "
                    "the layouts the generate and clip services load. Idempotent and resumable; "
                    "every file is checked against its sha256 (from the catalogue, or recorded "
                    "in <store>/.hf-lock.json on first use). Prints the store path on stdout.",
        epilog="Environment: IMGINTERP_MODEL_STORE (default ~/.cache/image-interpreter/models), "
               "IMGINTERP_HF_ENDPOINT (default https://huggingface.co; a mirror or a file:// "
               "folder with <repository>/resolve/<revision>/<path>), HF_TOKEN (sent as a Bearer "
               "token to the endpoint).")
    p.add_argument("--only", default="", metavar="NAMES",
                   help="comma-separated catalogue names (e.g. sd15,controlnet-canny); see --list")
    p.add_argument("--variant", default="", metavar="NAME",
                   help="fetch this variant of the weights where one exists (fp16)")
    p.add_argument("--list", action="store_true", help="list catalogue models and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="print URL, destination and sha256 of every file; download nothing")
    p.add_argument("--check", action="store_true",
                   help="list the files missing from the store and where they go; exit 1 if any")
    p.add_argument("--require-checksums", action="store_true",
                   help="refuse files whose sha256 the catalogue does not give")
    p.add_argument("--store", default=None, help="model store (default $IMGINTERP_MODEL_STORE)")
    p.add_argument("--catalogue", default=CATALOGUE, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    catalogue, by_name = load_catalogue(a.catalogue)
    if a.list:
        return cmd_list(catalogue, by_name)
    only = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in only if n not in by_name]
    if unknown:
        log(f"unknown model(s) {', '.join(unknown)}; see --list")
        return 2
    if a.variant and not any(a.variant in f.get("variants", {})
                             for m in catalogue["models"] for f in m["files"]):
        log(f"no catalogue file has a variant {a.variant!r}")
        return 2
    selected = [m for m in catalogue["models"]
                if (m["name"] in only if only else m.get("default", True))]
    store = os.path.abspath(a.store or model_store())
    base_url = endpoint()

    if a.check:
        return cmd_check(selected, by_name, store, a.variant, base_url)
    if a.dry_run:
        return cmd_dry_run(selected, by_name, store, a.variant, base_url)

    jobs = [j for m in selected for j in jobs_of(m, by_name, store, a.variant)]
    if a.require_checksums:
        unchecked = [j for j in jobs if not j.sha256]
        if unchecked:
            for j in unchecked:
                log(f"REFUSED (--require-checksums): {j.key} has no sha256 in {a.catalogue} "
                    f"(would go to {j.dest_rel})")
            log(f"{len(unchecked)} file(s) without a catalogue sha256; nothing was downloaded")
            return 1

    lock = Lock(store)
    failed, fetched, trusted_before = [], 0, len(lock.data["files"])
    for job in jobs:
        if is_present(job, lock):
            log(f"{job.dest_rel}: up to date")
            continue
        try:
            fetch(job, lock, base_url)
            fetched += 1
        except FetchError as e:
            log(f"FAILED: {e}")
            failed.append(job)
    lock.save()
    write_configs(catalogue, by_name, store, a.variant)
    trusted = len(lock.data["files"]) - trusted_before
    if trusted:
        log(f"TRUST ON FIRST USE: {trusted} file(s) had no catalogue sha256; their sha256 is now "
            f"in {lock.path} and enforced from now on (use --require-checksums to refuse them)")
    log(f"{fetched} file(s) fetched, {len(jobs) - fetched - len(failed)} already present, "
        f"{len(failed)} failed")
    if failed:
        incomplete = sorted({j.model["name"] for j in failed})
        log(f"incomplete: {', '.join(incomplete)} (see the messages above; "
            "`fetch-hf.sh --check` lists what is missing)")
        return 1
    print(store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
