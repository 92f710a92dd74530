"""`berth build`: docker's Dockerfile (classic builder) with a layer cache.

Instructions: FROM (an image, a previous stage, or scratch; `AS name`), RUN, CMD, ENTRYPOINT,
COPY (--from, --chown), ADD (local files; local archives are unpacked), ENV, ARG, WORKDIR, USER,
LABEL, EXPOSE, VOLUME, STOPSIGNAL, SHELL, ONBUILD, HEALTHCHECK, MAINTAINER, and the `# escape=`
directive. Parsing is berth.image.dockerfile, variable expansion berth.image.shellwords (in the
instructions the Dockerfile reference lists), the layers of COPY/ADD berth.image.buildcopy.

Each step makes an (untagged) image; the cache maps (parent image, instruction after expansion,
content of the files a COPY/ADD takes — for --from, the source image's ID — and a RUN's build
arguments) to that image, so an unchanged build is served from the cache and gives the same image
ID, and a change rebuilds from the step it touches on. The result is the last stage (or
--target's). RUN steps run with no network (unless asked for the host's), the build container's
own hostname, and the runtime's /etc mount points left out of their layers.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import posixpath
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from berth import proc
from berth.container.pathres import mkdirs_in_root, open_in_root, resolve_in_root
from berth.errors import BerthError, InvalidInput
from berth.image import buildconfig as bc
from berth.image import formats
from berth.image.buildcopy import CopyRequest, LayerTar, chown_owner, resolve, write_copy
from berth.image.buildsources import CONTEXT, Ignore, Source, sources
from berth.image.dockerfile import Instruction, decode, parse, parse_line
from berth.image.shellwords import process_word, process_words
from berth.image.store import Image, ImageStore
from berth.storage.tarwriter import TarWriter

if TYPE_CHECKING:
    from berth.container.manager import Container, ContainerManager
    from berth.storage.layers import Layer, LayerStore

Say = Callable[[str], None]
CHUNK = 1 << 20
# the files the runtime bind-mounts into every container: docker keeps their mount points out of
# the image (its init layer), so a RUN step must not commit them either
MOUNT_POINTS = ("etc/resolv.conf", "etc/hosts", "etc/hostname")


class BuildError(BerthError):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Scratch:
    """The empty base of `FROM scratch`: no layer, no configuration."""

    id = "scratch"
    top_layer: str | None = None
    size = 0


SCRATCH_CONFIG: dict[str, object] = {"architecture": formats.host_arch(), "os": "linux", "config": {},
                                     "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


@dataclass
class Stage:
    img: Image
    cfg: dict[str, object]
    name: str | None
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False

    @property
    def icfg(self) -> dict[str, object]:
        return self.cfg.setdefault("config", {}) or {}  # type: ignore[return-value]


class Builder:
    def __init__(self, images: ImageStore, layers: LayerStore, containers: ContainerManager, context: str,
                 dockerfile: str, build_args: dict[str, str], say: Say, use_cache: bool = True,
                 target: str | None = None, dockerfile_data: bytes | None = None, network: str = "none") -> None:
        self.images, self.layers, self.containers = images, layers, containers
        self.context = os.path.abspath(context)
        if not os.path.isdir(self.context):
            raise InvalidInput(f"build context {context} is not a directory")
        self.dockerfile = dockerfile
        self.dockerfile_data = dockerfile_data
        self.build_args = dict(build_args)
        self.say = say
        self.use_cache = use_cache
        self.ignored = Ignore(self.context)
        self.target = target
        if network not in ("none", "host"):
            raise InvalidInput(f"build --network {network}: RUN steps take none (the default) or host")
        self.network = network
        self.stages: list[Image] = []  # the final image of each finished stage, in order
        self.stage_names: dict[str, int] = {}
        self.escape = "\\"

    # -- cache -------------------------------------------------------------------------------
    def _cache_get(self, key: str) -> Image | None:
        image_id = self.images.cached_step(key)
        if image_id is None or not self.use_cache:
            return None
        try:
            return self.images.get(image_id)
        except BerthError:
            return None

    # -- the build ---------------------------------------------------------------------------
    def _read(self) -> list[Instruction]:
        data = self.dockerfile_data
        if data is None:
            with open(self.dockerfile, "rb") as f:
                data = f.read()
        df = parse(decode(data, self.dockerfile), self.dockerfile)
        self.escape = df.escape
        first = df.instructions[0].name
        if first not in ("FROM", "ARG") or not any(i.name == "FROM" for i in df.instructions):
            raise InvalidInput(f"{self.dockerfile}: the first instruction must be FROM (after ARGs)")
        return df.instructions

    def build(self, tags: list[str]) -> Image:
        steps = self._read()
        global_args: dict[str, str | None] = {}
        st: Stage | None = None
        total = len(steps)
        for i, ins in enumerate(steps, 1):
            where = f"{self.dockerfile} line {ins.line}"
            self.say(f"Step {i}/{total} : {ins.original}")
            try:
                if ins.name == "FROM":
                    if st is not None:
                        self._finish_stage(st)
                        if self.target and st.name == self.target:
                            st = None
                            break
                    st = self._from(ins, global_args, where)
                    continue
                if ins.name == "ARG" and st is None:
                    self._arg(ins, global_args, global_args, None)
                    continue
                if st is None:
                    raise InvalidInput(f"{ins.name} before FROM")
                self._step(st, ins, global_args)
            except BuildError:
                raise
            except BerthError as err:
                raise BuildError(f"{where}: {ins.name}: {err}") from None
        if st is not None:
            self._finish_stage(st)
        if self.target and self.target not in self.stage_names:
            raise InvalidInput(f"--target {self.target}: no stage of {self.dockerfile} is named so")
        img = self.stages[self.stage_names[self.target]] if self.target else self.stages[-1]
        if img.id == "scratch":
            raise InvalidInput(f"{self.dockerfile}: the last stage is an empty scratch image; add a step to it")
        for t in tags:
            self.images.tag(img.id, t)
        self.say(f"Successfully built {img.id[7:19]}" + "".join(f"\nSuccessfully tagged {t}" for t in tags))
        return self.images.get(img.id)

    def _finish_stage(self, st: Stage) -> None:
        if st.name is not None:
            self.stage_names[st.name] = len(self.stages)
        self.stages.append(st.img)

    def _from(self, ins: Instruction, global_args: dict[str, str | None], where: str) -> Stage:
        words = [process_word(w, global_args, self.escape) for w in ins.args]
        name = words[2] if len(words) == 3 else None
        if name is not None and (name in self.stage_names or name.isdigit()):
            raise InvalidInput(f"stage name {name!r} is taken or a number")
        img, cfg = self._base(words[0])
        st = Stage(img, copy.deepcopy(cfg), name)
        self.say(f" ---> {img.id[7:19] if img.id != 'scratch' else 'scratch'}")
        bc.ensure_path(st.icfg)
        triggers = list(st.icfg.get("OnBuild") or [])  # type: ignore[call-overload]
        st.icfg["OnBuild"] = None
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for text in triggers:
            trigger = parse_line(str(text), ins.line, f"{self.dockerfile} (ONBUILD trigger of {words[0]})",
                                 self.escape)
            self.say(f" ---> Running in trigger: {trigger.original}")
            self._step(st, trigger, global_args)
        return st

    def _base(self, ref: str) -> tuple[Image, dict[str, object]]:
        """The image a FROM starts from: a previous stage by name, scratch, or an image."""
        if ref in self.stage_names:
            img = self.stages[self.stage_names[ref]]
        elif ref == "scratch":
            return _Scratch(), json.loads(json.dumps(SCRATCH_CONFIG))  # type: ignore[return-value]
        else:
            img = self.images.resolve(ref)
        if img.id == "scratch":
            return img, json.loads(json.dumps(SCRATCH_CONFIG))
        return img, self.images.config(img.id)

    def _stage_image(self, ref: str) -> Image:
        """The image COPY --from reads: a finished stage by name or index, or any image."""
        if ref.isdigit():
            if int(ref) >= len(self.stages):
                raise InvalidInput(f"--from={ref}: there are only {len(self.stages)} finished stage(s) before "
                                   "this one")
            img = self.stages[int(ref)]
        elif ref in self.stage_names:
            img = self.stages[self.stage_names[ref]]
        else:
            img = self.images.resolve(ref)
        if img.id == "scratch":
            raise InvalidInput(f"--from={ref}: that stage is empty (scratch)")
        return img

    # -- one step ----------------------------------------------------------------------------
    def _vars(self, st: Stage) -> dict[str, str | None]:
        """What $VAR sees: the image's Env, then the stage's build arguments (Env wins)."""
        out: dict[str, str | None] = dict(bc.env_dict(st.icfg))
        for k, v in st.args.items():
            if k not in out and v is not None:
                out[k] = v
        return out

    def _word(self, st: Stage, text: str) -> str:
        return process_word(text, self._vars(st), self.escape)

    def _arg(self, ins: Instruction, scope: dict[str, str | None], global_args: dict[str, str | None],
             st: Stage | None) -> None:
        env = self._vars(st) if st is not None else global_args
        for word in ins.args:
            name, sep, default = word.partition("=")
            if not name:
                raise InvalidInput(f"ARG {word!r}: the name is empty")
            if name in self.build_args:
                scope[name] = self.build_args[name]
            elif sep:
                scope[name] = process_word(default, env, self.escape)
            else:
                scope[name] = global_args.get(name) if st is not None else None

    def _step(self, st: Stage, ins: Instruction, global_args: dict[str, str | None]) -> None:
        if ins.name == "ARG":
            self._arg(ins, st.args, global_args, st)
            return
        plan, content, produce = self._plan(st, ins)
        run_env = sorted((k, v) for k, v in st.args.items() if v is not None) if ins.name == "RUN" else []
        key = hashlib.sha256(json.dumps([st.img.id, ins.name, plan, content, run_env, self.network,
                                         st.cfg.get("config")], sort_keys=True, default=str).encode()).hexdigest()
        cached = self._cache_get(key)
        if cached is not None:
            st.img, st.cfg = cached, self.images.config(cached.id)
            self.say(" ---> Using cache")
        else:
            st.img = produce()
            st.cfg = self.images.config(st.img.id)
            self.images.cache_step(key, st.img.id)
        if ins.name == "CMD":
            st.cmd_set = True
        self.say(f" ---> {st.img.id[7:19]}")

    def _plan(self, st: Stage, ins: Instruction) -> tuple[object, str, Callable[[], Image]]:
        """(the step as the cache sees it, a content key, what makes its image)."""
        icfg = copy.deepcopy(st.icfg)
        created_by = f"/bin/sh -c #(nop) {ins.name} {ins.text}"
        name = ins.name
        if name == "RUN":
            command = ins.args if ins.json_form else bc.shell_form(icfg, ins.args[0])
            return command, "", lambda: self._run(st, command, ins)
        if name in ("COPY", "ADD"):
            return self._plan_copy(st, ins, icfg, created_by)
        if name == "WORKDIR":
            path = self._word(st, ins.args[0])
            wd = posixpath.normpath(posixpath.join("/", str(icfg.get("WorkingDir") or "/"), path))
            icfg["WorkingDir"] = wd
            return wd, "", lambda: self._workdir(st, icfg, wd, created_by)
        if name in ("ENV", "LABEL"):
            v = self._vars(st)
            labels = dict(icfg.get("Labels") or {})  # type: ignore[call-overload]
            for k, raw in ins.pairs:
                key = process_word(k, v, self.escape)
                value = process_word(raw, v, self.escape)
                if not key:
                    raise InvalidInput(f"{name} names can not be blank")
                if name == "ENV":
                    bc.set_env(icfg, key, value)  # every pair sees the variables before this ENV, as in docker
                else:
                    labels[key] = value
            if name == "LABEL":
                icfg["Labels"] = labels
        elif name == "USER":
            icfg["User"] = self._word(st, ins.args[0])
        elif name == "EXPOSE":
            ports = dict(icfg.get("ExposedPorts") or {})  # type: ignore[call-overload]
            words = [w for a in ins.args for w in process_words(a, self._vars(st), self.escape)]
            ports.update({p: {} for p in bc.exposed(words)})
            icfg["ExposedPorts"] = ports
        elif name == "VOLUME":
            vols = dict(icfg.get("Volumes") or {})  # type: ignore[call-overload]
            for a in ins.args:
                path = self._word(st, a).strip()
                if not path:
                    raise InvalidInput("VOLUME specified can not be an empty string")
                vols[path] = {}
            if not ins.args:
                raise InvalidInput("VOLUME requires at least one argument")
            icfg["Volumes"] = vols
        elif name == "STOPSIGNAL":
            icfg["StopSignal"] = bc.check_signal(self._word(st, ins.args[0]))
        elif name == "SHELL":
            icfg["Shell"] = ins.args
        elif name == "ONBUILD":
            icfg["OnBuild"] = [*(icfg.get("OnBuild") or []), ins.args[0]]  # type: ignore[misc]
        elif name == "HEALTHCHECK":
            icfg["Healthcheck"] = bc.healthcheck(ins.args, ins.flags, icfg.get("Healthcheck"))
        elif name == "CMD":
            icfg["Cmd"] = ins.args if ins.json_form else bc.shell_form(icfg, ins.args[0])
        elif name == "ENTRYPOINT":
            icfg["Entrypoint"] = ins.args if ins.json_form else bc.shell_form(icfg, ins.args[0])
            if not st.cmd_set:
                icfg["Cmd"] = None  # docker: a new ENTRYPOINT drops the CMD of the base
        elif name == "MAINTAINER":
            return ["author", ins.args[0]], "", lambda: self._new_image(st, None, created_by, icfg,
                                                                          author=ins.args[0])
        return icfg, "", lambda: self._new_image(st, None, created_by, icfg)

    # -- images and layers -------------------------------------------------------------------
    def _new_image(self, st: Stage, layer: Layer | None, created_by: str, icfg: dict[str, object],
                   author: str | None = None) -> Image:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        new = copy.deepcopy(st.cfg)
        new["created"] = now
        new["config"] = icfg
        if author is not None:
            new["author"] = author
        history = list(new.get("history") or [])  # type: ignore[call-overload]
        entry: dict[str, object] = {"created": now, "created_by": created_by}
        rootfs = dict(new.get("rootfs") or {"type": "layers", "diff_ids": []})  # type: ignore[call-overload]
        if layer is not None:
            rootfs["diff_ids"] = list(rootfs.get("diff_ids", [])) + [layer.diff_id]
        else:
            entry["empty_layer"] = True
        history.append(entry)
        new["history"] = history
        new["rootfs"] = rootfs
        size = layer.size if layer is not None else 0
        return self.images.add(new, layer.id if layer is not None else st.img.top_layer, st.img.size + size, [])

    @contextlib.contextmanager
    def _view(self, img: Image) -> Iterator[str]:
        """A throwaway mounted view of an image's file system (read, never committed)."""
        layer = self.layers.create_rw(img.top_layer)
        try:
            root = self.layers.mount(layer.id)
            try:
                yield root
            finally:
                self.layers.unmount(layer.id)
        finally:
            self.layers.remove(layer.id)

    def _layer(self, img: Image, produce: Callable[[TarWriter], None]) -> Layer:
        """A layer on img from entries written by produce, streamed through a pipe (never whole
        in memory); produce's own error wins over the truncated stream it leaves."""
        r, w = os.pipe()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with os.fdopen(w, "wb", buffering=CHUNK) as out:
                    tw = TarWriter(out)
                    produce(tw)
                    tw.close()
            except BaseException as err:  # noqa: BLE001 - handed to the consumer's thread
                errors.append(err)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        failure: BaseException | None = None
        layer = None
        try:
            with os.fdopen(r, "rb", buffering=CHUNK) as stream:
                layer, _new, _res = self.layers.create_from_tar(img.top_layer, stream)
        except BaseException as err:  # noqa: BLE001 - decided below, after the producer ended
            failure = err
        t.join()
        produced = next((e for e in errors if not isinstance(e, BrokenPipeError)), None)
        if produced is not None:
            raise produced
        if failure is not None:
            raise failure
        assert layer is not None
        return layer

    def _workdir(self, st: Stage, icfg: dict[str, object], wd: str, created_by: str) -> Image:
        """docker creates a WORKDIR that does not exist (0755, root's)."""
        with self._view(st.img) as view:
            parts = resolve(view, wd)
            host = os.path.join(view, *parts)
            if os.path.isdir(host):
                return self._new_image(st, None, created_by, icfg)
            if os.path.lexists(host):
                raise InvalidInput(f"cannot create the working directory {wd}: it is not a directory")
            layer = self._layer(st.img, lambda tw: LayerTar(tw, view).ensure_dir(parts, (0, 0)))
        return self._new_image(st, layer, created_by, icfg)

    # -- COPY / ADD --------------------------------------------------------------------------
    def _plan_copy(self, st: Stage, ins: Instruction, icfg: dict[str, object], created_by: str
                   ) -> tuple[object, str, Callable[[], Image]]:
        words = [self._word(st, a) for a in ins.args]
        srcs, dest = words[:-1], words[-1]
        chown = self._word(st, ins.flags["chown"]) if "chown" in ins.flags else None
        stage = self._word(st, ins.flags["from"]) if "from" in ins.flags else None
        if ins.name == "ADD" and any(s.startswith(("http://", "https://")) for s in srcs):
            raise InvalidInput("ADD of a URL is not supported: download it in a RUN step or into the context")
        plan = [srcs, dest, chown, stage, icfg.get("WorkingDir")]
        if stage is not None:
            content = self._stage_image(stage).id  # images are immutable: the ID is the content
        else:
            content = self._content_key(sources(self.context, srcs, CONTEXT, self.ignored))

        def produce() -> Image:
            with contextlib.ExitStack() as stack:
                view = stack.enter_context(self._view(st.img))
                if stage is not None:
                    root = stack.enter_context(self._view(self._stage_image(stage)))
                    found = sources(root, srcs, f"image of --from={stage}")
                    base = root
                else:
                    found = sources(self.context, srcs, CONTEXT, self.ignored)
                    base = self.context
                owner = chown_owner(view, chown) if chown else (None if stage is not None else (0, 0))

                def rel(src: Source) -> str:
                    return os.path.relpath(src.path, base) if src.path != base else ""

                req = CopyRequest(found, dest, str(icfg.get("WorkingDir") or "/"), owner, ins.name == "ADD",
                                  self.ignored if stage is None else (lambda _r: False), rel)
                layer = self._layer(st.img, lambda tw: write_copy(tw, view, req))
            return self._new_image(st, layer, created_by, icfg)

        return plan, content, produce

    def _content_key(self, found: list[Source]) -> str:
        h = hashlib.sha256()
        for src in found:
            items = [("", src.path, src.st)]
            if stat.S_ISDIR(src.st.st_mode):
                from berth.image.buildsources import walk_tree

                items += walk_tree(src.path, os.path.relpath(src.path, self.context), self.ignored)
            for rel, p, s in items:
                h.update(f"{src.name}\0{rel}\0{stat.S_IFMT(s.st_mode)}\0{stat.S_IMODE(s.st_mode)}\0".encode())
                if stat.S_ISREG(s.st_mode):
                    with open(p, "rb") as f:
                        for chunk in iter(lambda f=f: f.read(CHUNK), b""):
                            h.update(chunk)
                elif stat.S_ISLNK(s.st_mode):
                    h.update(os.readlink(p).encode())
        return h.hexdigest()

    # -- RUN ---------------------------------------------------------------------------------
    def _run(self, st: Stage, command: list[str], ins: Instruction) -> Image:
        from berth.container.config import ContainerConfig, Mount

        env = [str(e) for e in st.icfg.get("Env") or []]  # type: ignore[attr-defined]
        names = bc.env_dict(st.icfg)
        env += [f"{k}={v}" for k, v in st.args.items() if v is not None and k not in names]
        volumes = sorted(st.icfg.get("Volumes") or {})  # type: ignore[call-overload]
        with contextlib.ExitStack() as stack:
            mounts = [Mount(stack.enter_context(self._volume(st.img, v)), v) for v in volumes]
            c = self.containers.create(ContainerConfig(image=st.img.id, command=command, entrypoint=[], env=env,
                                                       network=self.network, volumes=mounts),
                                       f"build-{os.urandom(6).hex()}", trusted=True)
            layer = self._run_and_commit(st, c, ins, volumes)
        return self._new_image(st, layer, f"/bin/sh -c {ins.text}", copy.deepcopy(st.icfg))

    @contextlib.contextmanager
    def _volume(self, img: Image, path: str) -> Iterator[str]:
        """What a RUN step sees at a declared VOLUME: as in docker, a throwaway volume filled with
        the image's content there, so that what the step writes into it is not committed."""
        tmp = tempfile.mkdtemp(prefix="berth-build-volume-")
        try:
            with self._view(img) as view:
                src = resolve_in_root(view, path)
                if src is not None and os.path.isdir(src):
                    proc.run(["cp", "-a", "--", src + "/.", tmp], timeout=3600)
                    st = os.stat(src)
                    os.chown(tmp, st.st_uid, st.st_gid)
                    os.chmod(tmp, stat.S_IMODE(st.st_mode))
                else:
                    os.chmod(tmp, 0o755)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run_and_commit(self, st: Stage, c: Container, ins: Instruction, volumes: list[str]) -> Layer:
        try:
            absent, new_volumes = self._absent(c, volumes)
            code = self.containers.run_attached(c)
            if code != 0:
                raise BuildError(f"{self.dockerfile} line {ins.line}: RUN {ins.text}: the command returned a "
                                 f"non-zero code: {code}", exit_code=code)
            self._fix_mount_points(c, absent, volumes, new_volumes)
            return self.layers.commit(c.rw_layer, st.img.top_layer)
        finally:
            self.containers.remove(c.id, force=True)

    def _absent(self, c: Container, volumes: list[str]) -> tuple[list[str], list[str]]:
        """The runtime's mount points (and /etc) and the VOLUMEs that the image does not have."""
        with self.layers.mounted(c.rw_layer) as root:
            absent = [p for p in ("etc", *MOUNT_POINTS) if not os.path.lexists(os.path.join(root, p))]
            return absent, [v for v in volumes if resolve_in_root(root, v) is None]

    def _fix_mount_points(self, c: Container, absent: list[str], volumes: list[str], new_volumes: list[str]
                          ) -> None:
        """Remove the empty files the runtime made to mount /etc/hosts & co. on, as docker keeps
        them out of the image (a RUN that wrote one of them for real keeps it); create the
        directories of declared VOLUMEs, as docker's build container does (0755, root's)."""
        if not absent and not volumes:
            return
        with self.layers.mounted(c.rw_layer) as root:
            for v in volumes:
                if v in new_volumes:
                    # the runtime made the mount point with a mode of its own; docker's is 0755
                    with contextlib.suppress(OSError):
                        fd = open_in_root(root, v)
                        try:
                            os.chmod(f"/proc/self/fd/{fd}", 0o755)
                        finally:
                            os.close(fd)
                mkdirs_in_root(root, v)
            for p in absent:
                host = os.path.join(root, p)
                with contextlib.suppress(OSError):
                    st = os.lstat(host)
                    if p != "etc" and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                        os.unlink(host)
            if "etc" in absent:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(root, "etc"))


def default_say(quiet: bool) -> Say:
    if quiet:
        return lambda _m: None
    return lambda m: print(m, file=sys.stderr, flush=True)
