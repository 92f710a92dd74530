"""`berth build`: a Dockerfile subset with a layer cache.

Supported: FROM (an image, a previous stage, or scratch; `AS name` names a stage), RUN, COPY,
ADD (local files; local tar archives are unpacked, like docker), COPY --from=STAGE|INDEX|IMAGE,
ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE. Each step makes an (untagged) image; the
cache maps (parent image, instruction after ARG substitution, content of the files a COPY/ADD
takes — for --from, the source image's ID) to that image, so an unchanged build is served from
the cache and gives the same image ID, and a change rebuilds from the step it touches on. The
result is the last stage (or --target's).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shlex
import stat
import sys
import tarfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.container.pathres import resolve_in_root
from berth.errors import BerthError, HostileInput, InvalidInput
from berth.image import changes as changes_mod
from berth.image import formats
from berth.image.store import Image, ImageStore
from berth.storage.tarwriter import DIRTYPE, REGTYPE, SYMTYPE, TarEntry, TarWriter

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager
    from berth.storage.layers import LayerStore

INSTRUCTIONS = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "LABEL",
                "EXPOSE")
Say = Callable[[str], None]


class BuildError(BerthError):
    pass


def parse_dockerfile(text: str, path: str = "Dockerfile") -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    steps: list[tuple[int, str, str]] = []
    buf = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, args = buf.strip().partition(" ")
        instr = word.upper()
        if instr not in INSTRUCTIONS:
            raise InvalidInput(f"{path} line {start}: unsupported instruction {word!r} "
                               f"(supported: {', '.join(INSTRUCTIONS)})")
        steps.append((start, instr, args.strip()))
        buf = ""
    if buf:
        raise InvalidInput(f"{path}: the last instruction ends with a line continuation")
    if not steps or steps[0][1] not in ("FROM", "ARG"):
        raise InvalidInput(f"{path}: the first instruction must be FROM")
    return steps


def _substitute(s: str, args: dict[str, str], env: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return env.get(name, args.get(name, ""))
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, s)


def _dockerignore(context: str) -> list[str]:
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [ln.strip().rstrip("/") for ln in f if ln.strip() and not ln.strip().startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    result = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        pat = pat.lstrip("/")
        if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*") or \
                any(fnmatch.fnmatch("/".join(rel.split("/")[:i]), pat) for i in range(1, rel.count("/") + 1)):
            result = not neg
    return result


def _inside(context: str, rel: str) -> str:
    full = os.path.realpath(os.path.join(context, rel))
    root = os.path.realpath(context)
    if full != root and not full.startswith(root + "/"):
        raise HostileInput(f"COPY source {rel!r} is outside the build context")
    return full


def _walk(full: str, base_rel: str, context: str, patterns: list[str]) -> list[tuple[str, str]]:
    """(path relative to the source, host path) of every entry of a source file or directory."""
    out = []
    if os.path.isdir(full) and not os.path.islink(full):
        for root, dirs, files in os.walk(full):
            dirs.sort()
            for name in sorted(dirs + files):
                p = os.path.join(root, name)
                rel_ctx = os.path.relpath(p, context)
                if _ignored(rel_ctx, patterns):
                    continue
                out.append((os.path.relpath(p, full), p))
    else:
        out.append((os.path.basename(full), full))
    return out


class _Scratch:
    """The empty base of `FROM scratch`: no layer, no configuration."""

    id = "scratch"
    top_layer: str | None = None
    size = 0


SCRATCH_CONFIG: dict[str, object] = {"architecture": formats.host_arch(), "os": "linux", "config": {},
                                     "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


class Builder:
    def __init__(self, images: ImageStore, layers: LayerStore, containers: ContainerManager, context: str,
                 dockerfile: str, build_args: dict[str, str], say: Say, use_cache: bool = True,
                 target: str | None = None) -> None:
        self.images, self.layers, self.containers = images, layers, containers
        self.context = os.path.abspath(context)
        if not os.path.isdir(self.context):
            raise InvalidInput(f"build context {context} is not a directory")
        self.dockerfile = dockerfile
        self.build_args = dict(build_args)
        self.say = say
        self.use_cache = use_cache
        self.patterns = _dockerignore(self.context)
        self.target = target
        self.stages: list[Image] = []  # the final image of each finished stage, in order
        self.stage_names: dict[str, int] = {}

    # -- cache -------------------------------------------------------------------------------
    def _cache_get(self, key: str) -> Image | None:
        image_id = self.images.cached_step(key)
        if image_id is None or not self.use_cache:
            return None
        try:
            return self.images.get(image_id)
        except BerthError:
            return None

    def _cache_put(self, key: str, image_id: str) -> None:
        self.images.cache_step(key, image_id)

    # -- steps -------------------------------------------------------------------------------
    def build(self, tags: list[str]) -> Image:
        with open(self.dockerfile, encoding="utf-8") as f:
            steps = parse_dockerfile(f.read(), self.dockerfile)
        global_args: dict[str, str] = {}
        args: dict[str, str] = {}  # the current stage's ARGs: each FROM starts a new scope, as in docker
        img: Image | None = None
        cfg: dict[str, object] = {}
        total = len(steps)
        stage_name: str | None = None
        for i, (line, instr, raw) in enumerate(steps, 1):
            env = dict(e.split("=", 1) for e in (cfg.get("config") or {}).get("Env", []) if "=" in e)  # type: ignore[union-attr]
            text = raw if instr in ("RUN", "CMD", "ENTRYPOINT") else \
                _substitute(raw, global_args if instr == "FROM" else args, env)
            self.say(f"Step {i}/{total} : {instr} {text}")
            if instr == "ARG":
                name, sep, default = text.partition("=")
                if img is None:
                    # before the first FROM: a global, usable in FROM lines and re-declarable in stages
                    global_args[name] = self.build_args.get(name, default)
                else:
                    args[name] = self.build_args.get(name, default if sep else global_args.get(name, ""))
                continue
            if instr == "FROM":
                if img is not None:
                    self._finish_stage(img, stage_name)
                    if self.target and stage_name == self.target:
                        break
                words = text.split()
                if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                    raise InvalidInput(f"{self.dockerfile} line {line}: FROM IMAGE [AS NAME], not {text!r}")
                stage_name = words[2] if len(words) == 3 else None
                if stage_name is not None and (stage_name in self.stage_names or stage_name.isdigit()):
                    raise InvalidInput(f"{self.dockerfile} line {line}: stage name {stage_name!r} is taken or a "
                                       "number")
                img, cfg = self._base(words[0])
                args = {}
                self.say(f" ---> {img.id[7:19] if img.id != 'scratch' else 'scratch'}")
                continue
            if img is None:
                raise InvalidInput(f"{self.dockerfile} line {line}: {instr} before FROM")
            content = self._content_key(instr, text, cfg) if instr in ("COPY", "ADD") else ""
            if instr == "ADD" and self._sources(text)[2].get("from") is not None:
                raise InvalidInput(f"{self.dockerfile} line {line}: ADD takes no --from (use COPY --from)")
            arg_env = sorted((k, v) for k, v in args.items()) if instr == "RUN" else []
            key = hashlib.sha256(json.dumps([img.id, instr, text, content, arg_env]).encode()).hexdigest()
            cached = self._cache_get(key)
            if cached is not None:
                img, cfg = cached, self.images.config(cached.id)
                self.say(" ---> Using cache")
                self.say(f" ---> {img.id[7:19]}")
                continue
            try:
                if instr == "RUN":
                    img = self._run(img, cfg, text, args, i, total)
                elif instr in ("COPY", "ADD"):
                    img = self._copy(img, cfg, instr, text)
                else:
                    img = self._meta(img, cfg, instr, text)
            except BuildError:
                raise
            except BerthError as err:
                raise BuildError(f"step {i}/{total} ({instr} {text}): {err}") from None
            cfg = self.images.config(img.id)
            self._cache_put(key, img.id)
            self.say(f" ---> {img.id[7:19]}")
        if img is None:
            raise InvalidInput(f"{self.dockerfile} has no FROM")
        if self.target and stage_name != self.target and self.target not in self.stage_names:
            raise InvalidInput(f"--target {self.target}: no stage of {self.dockerfile} is named so")
        if img.id == "scratch":
            raise InvalidInput(f"{self.dockerfile}: the last stage is an empty scratch image; add a step to it")
        for t in tags:
            self.images.tag(img.id, t)
        self.say(f"Successfully built {img.id[7:19]}" + "".join(f"\nSuccessfully tagged {t}" for t in tags))
        return self.images.get(img.id)

    def _finish_stage(self, img: Image, name: str | None) -> None:
        if name is not None:
            self.stage_names[name] = len(self.stages)
        self.stages.append(img)

    def _base(self, ref: str) -> tuple[Image, dict[str, object]]:
        """The image a FROM starts from: a previous stage by name, scratch, or an image."""
        if ref in self.stage_names:
            img = self.stages[self.stage_names[ref]]
        elif ref == "scratch":
            return _Scratch(), json.loads(json.dumps(SCRATCH_CONFIG))  # type: ignore[return-value]
        else:
            img = self.images.resolve(ref)
        return img, self.images.config(img.id)

    def _stage(self, ref: str) -> Image:
        """The image COPY --from reads: a finished stage by name or index, or any image."""
        if ref.isdigit():
            if int(ref) >= len(self.stages):
                raise InvalidInput(f"COPY --from={ref}: there are only {len(self.stages)} finished stage(s) before "
                                   "this one")
            img = self.stages[int(ref)]
        elif ref in self.stage_names:
            img = self.stages[self.stage_names[ref]]
        else:
            img = self.images.resolve(ref)
        if img.id == "scratch":
            raise InvalidInput(f"COPY --from={ref}: that stage is empty (scratch)")
        return img

    def _new_image(self, cfg: dict[str, object], parent: Image, layer_id: str | None, diff_id: str | None,
                   size: int, created_by: str, icfg: dict[str, object] | None = None) -> Image:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        new = dict(cfg)
        new["created"] = now
        if icfg is not None:
            new["config"] = icfg
        history = list(cfg.get("history") or [])  # type: ignore[call-overload]
        entry: dict[str, object] = {"created": now, "created_by": created_by}
        rootfs = dict(cfg.get("rootfs") or {"type": "layers", "diff_ids": []})  # type: ignore[call-overload]
        if diff_id:
            rootfs["diff_ids"] = list(rootfs.get("diff_ids", [])) + [diff_id]
        else:
            entry["empty_layer"] = True
        history.append(entry)
        new["history"] = history
        new["rootfs"] = rootfs
        return self.images.add(new, layer_id or parent.top_layer, parent.size + size, [])

    def _meta(self, img: Image, cfg: dict[str, object], instr: str, text: str) -> Image:
        icfg = dict(cfg.get("config") or {})  # type: ignore[call-overload]
        if instr == "WORKDIR":
            wd = text if text.startswith("/") else os.path.join(str(icfg.get("WorkingDir") or "/"), text)
            icfg["WorkingDir"] = os.path.normpath(wd)
        elif instr == "ENV" and "=" not in text.split()[0]:
            k, _, v = text.partition(" ")
            icfg = changes_mod.apply(icfg, [f"ENV {k}={shlex.quote(v.strip())}"])
        else:
            icfg = changes_mod.apply(icfg, [f"{instr} {text}"])
        return self._new_image(cfg, img, None, None, 0, f"/bin/sh -c #(nop) {instr} {text}", icfg)

    def _run(self, img: Image, cfg: dict[str, object], text: str, args: dict[str, str], i: int, total: int) -> Image:
        from berth.container.config import ContainerConfig

        icfg = cfg.get("config") or {}
        if text.startswith("["):
            try:
                command = json.loads(text)
            except ValueError:
                raise InvalidInput(f"RUN {text}: not a valid JSON array") from None
        else:
            command = ["/bin/sh", "-c", text]
        c = self.containers.create(ContainerConfig(image=img.id, command=command, entrypoint=[],
                                                     env=[f"{k}={v}" for k, v in args.items()],
                                                     network="host"), f"build-{os.urandom(6).hex()}", trusted=True)
        try:
            code = self.containers.run_attached(c)
            if code != 0:
                raise BuildError(f"step {i}/{total} (RUN {text}) failed with exit code {code}")
            layer = self.layers.commit(c.rw_layer, img.top_layer)
        finally:
            self.containers.remove(c.id, force=True)
        return self._new_image(cfg, img, layer.id, layer.diff_id, layer.size, f"/bin/sh -c {text}",
                               dict(icfg))  # type: ignore[call-overload]

    def _sources(self, text: str) -> tuple[list[str], str, dict[str, str]]:
        opts = {}
        parts = shlex.split(text) if not text.startswith("[") else json.loads(text)
        while parts and parts[0].startswith("--"):
            k, _, v = parts.pop(0)[2:].partition("=")
            opts[k] = v
        if len(parts) < 2:
            raise InvalidInput(f"COPY/ADD {text}: needs at least one source and a destination")
        if set(opts) - {"chown", "from"}:
            raise InvalidInput(f"COPY/ADD {text}: unsupported option(s) {', '.join(sorted(opts))}")
        return parts[:-1], parts[-1], opts

    def _content_key(self, instr: str, text: str, cfg: dict[str, object]) -> str:
        srcs, _dest, opts = self._sources(text)
        if opts.get("from") is not None:
            return self._stage(opts["from"]).id  # images are immutable: the ID is the content
        h = hashlib.sha256()
        for s in srcs:
            full = _inside(self.context, s)
            if not os.path.exists(full):
                raise InvalidInput(f"{instr} {text}: {s} does not exist in the build context")
            for rel, p in _walk(full, s, self.context, self.patterns):
                st = os.lstat(p)
                h.update(f"{s}\0{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                            h.update(chunk)
                elif stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(p).encode())
        return h.hexdigest()

    def _copy(self, img: Image, cfg: dict[str, object], instr: str, text: str) -> Image:
        srcs, dest, opts = self._sources(text)
        icfg = cfg.get("config") or {}
        workdir = str(icfg.get("WorkingDir") or "/")  # type: ignore[union-attr]
        dest_abs = dest if dest.startswith("/") else os.path.join(workdir, dest)
        dest_is_dir = dest.endswith("/") or len(srcs) > 1
        uid = gid = 0
        if opts.get("chown"):
            u, _, g = opts["chown"].partition(":")
            if not u.isdigit() or (g and not g.isdigit()):
                raise InvalidInput("COPY --chown takes numeric UID[:GID] here")
            uid, gid = int(u), int(g or u)
        buf = io.BytesIO()
        w = TarWriter(buf)
        made_dirs: set[str] = set()

        def add_dirs(path: str) -> None:
            parts = [p for p in path.strip("/").split("/") if p]
            for k in range(1, len(parts) + 1):
                d = "/".join(parts[:k])
                if d not in made_dirs:
                    made_dirs.add(d)
                    w.add(TarEntry(d, DIRTYPE, 0o755, uid=0, gid=0, mtime=int(time.time())))

        source_root, cleanup = self._source_root(opts.get("from"))
        try:
            self._add_sources(w, srcs, instr, dest_abs, dest_is_dir, uid, gid, add_dirs, made_dirs, source_root,
                              opts.get("from"))
        finally:
            cleanup()
        w.close()
        buf.seek(0)
        layer, _new, _res = self.layers.create_from_tar(img.top_layer, buf)
        return self._new_image(cfg, img, layer.id, layer.diff_id, layer.size,
                               f"/bin/sh -c #(nop) {instr} {text}", dict(icfg))  # type: ignore[call-overload]

    def _source_root(self, stage: str | None) -> tuple[str, Callable[[], None]]:
        """Where COPY reads from: the build context, or a throwaway view of the --from image."""
        if stage is None:
            return self.context, lambda: None
        img = self._stage(stage)
        layer = self.layers.create_rw(img.top_layer)
        try:
            root = self.layers.mount(layer.id)
        except BaseException:
            self.layers.remove(layer.id)
            raise

        def cleanup() -> None:
            self.layers.unmount(layer.id)
            self.layers.remove(layer.id)

        return root, cleanup

    def _add_sources(self, w: TarWriter, srcs: list[str], instr: str, dest_abs: str, dest_is_dir: bool, uid: int,
                     gid: int, add_dirs: Callable[[str], None], made_dirs: set[str], source_root: str,
                     stage: str | None) -> None:
        for s in srcs:
            if stage is None:
                full = _inside(self.context, s)
                patterns = self.patterns
            else:
                # inside the stage's file system: symlinks resolve there, never onto the host
                resolved = resolve_in_root(source_root, s)
                if resolved is None:
                    raise InvalidInput(f"COPY --from={stage}: {s} does not exist in that image")
                full, patterns = resolved, []
            if instr == "ADD" and os.path.isfile(full) and tarfile.is_tarfile(full):
                target = dest_abs.strip("/")
                add_dirs(target)
                with tarfile.open(full) as tf:
                    for m in tf:
                        name = os.path.normpath(os.path.join(target, m.name.lstrip("/")))
                        if name.startswith(".."):
                            raise HostileInput(f"ADD {s}: archive entry {m.name!r} leaves the destination")
                        if m.isdir():
                            add_dirs(name)
                        elif m.isreg():
                            add_dirs(os.path.dirname(name))
                            data = tf.extractfile(m).read()  # type: ignore[union-attr]
                            w.add_chunks(TarEntry(name, REGTYPE, m.mode & 0o7777, uid=uid, gid=gid, size=len(data),
                                                  mtime=int(m.mtime)), [data])
                        elif m.issym():
                            add_dirs(os.path.dirname(name))
                            w.add(TarEntry(name, SYMTYPE, 0o777, uid=uid, gid=gid, linkname=m.linkname))
                continue
            is_dir = os.path.isdir(full) and not os.path.islink(full)
            base = dest_abs if (is_dir or not dest_is_dir) else os.path.join(dest_abs, os.path.basename(full))
            base = base.strip("/")
            add_dirs(base if is_dir else os.path.dirname(base))
            entries = _walk(full, s, source_root, patterns) if is_dir else [("", full)]
            for rel, p in entries:
                name = os.path.join(base, rel) if rel else base
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    made_dirs.add(name)
                    w.add(TarEntry(name, DIRTYPE, stat.S_IMODE(st.st_mode), uid=uid, gid=gid, mtime=int(st.st_mtime)))
                elif stat.S_ISLNK(st.st_mode):
                    w.add(TarEntry(name, SYMTYPE, 0o777, uid=uid, gid=gid, mtime=int(st.st_mtime),
                                   linkname=os.readlink(p)))
                elif stat.S_ISREG(st.st_mode):
                    w.add(TarEntry(name, REGTYPE, stat.S_IMODE(st.st_mode), uid=uid, gid=gid, size=st.st_size,
                                   mtime=int(st.st_mtime)), p)


def default_say(quiet: bool) -> Say:
    if quiet:
        return lambda _m: None
    return lambda m: print(m, file=sys.stderr, flush=True)
