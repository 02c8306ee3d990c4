"""What each request to the daemon does to its plane, and who may ask.

Reading (``hello``, ``prog.list/show/dump``, ``quotas.show``, ``top``,
``events``) is open to anyone who can reach the socket.  Loading and
unloading programs and setting quotas need the daemon's owner, root or an
admin group of the quota file's ``[access]`` table; attaching as a tenant
needs to be allowed that tenant.  Every refusal is logged.

Tenants in other processes: on the simulated device an attached client's
launches run on the daemon's device (``launch``, ``launch.status``); a
client that detaches or dies has its unfinished launches cancelled, so its
running count drains to zero within one block time.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import tempfile
from pathlib import Path

from gbpfd.errors import GbpfdError, InputError
from gbpfd.service.protocol import VERSION, ServiceError

MAX_BLOCKS = 1 << 20
MAX_BLOCK_NS = 10 ** 9
EVENTS_PER_REPLY = 1000
LAUNCH_MODES = ("gate", "persistent")


def _int_arg(args: dict, name: str, low: int, high: int, default=None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ServiceError(f"argument {name!r} must be an integer in {low}..{high}, got {value!r}", "bad_args")
    return value


def _str_arg(args: dict, name: str, optional: bool = False) -> str | None:
    value = args.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ServiceError(f"argument {name!r} must be a non-empty string, got {value!r}", "bad_args")
    return value


def _as_client_file(err: InputError, tmp: str, name: str) -> InputError:
    """The loader's error, naming the client's file instead of the daemon's temporary copy."""
    path = name if err.path and err.path.startswith(tmp) else err.path
    return type(err)(err.reason, path=path, line=err.line, column=err.column)


class Operations:
    def __init__(self, plane, *, owner_uid: int, log, events):
        self.plane, self.owner_uid, self.log, self.events = plane, owner_uid, log, events
        self.table = {
            "hello": self.hello, "prog.list": self.prog_list, "prog.show": self.prog_show,
            "prog.dump": self.prog_dump, "prog.load": self.prog_load, "prog.unload": self.prog_unload,
            "quotas.show": self.quotas_show, "quotas.set": self.quotas_set, "top": self.top,
            "events": self.events_since, "attach": self.attach, "detach": self.detach, "launch": self.launch,
            "launch.status": self.launch_status,
        }

    def run(self, conn, op: str, args: dict):
        fn = self.table.get(op)
        if fn is None:
            raise ServiceError(f"unknown op {op!r}; the daemon serves {', '.join(self.table)}", "unknown_op")
        try:
            return fn(conn, args)
        except ServiceError:
            raise
        except GbpfdError as err:   # the plane's own refusal: its message is the one-line reason
            raise ServiceError(str(err), type(err).__name__) from None

    # ------------------------------------------------------------ rights
    def _deny(self, conn, what: str, why: str):
        self.log(f"refused {conn.peer}: {what}: {why}")
        raise ServiceError(f"{what}: {why}", "denied")

    def _require_admin(self, conn, what: str) -> None:
        access = self.plane.quotas.access
        if not access.may_administer(conn.peer.uid, conn.peer.gids, self.owner_uid):
            self._deny(conn, what, f"uid {conn.peer.uid} is not the daemon's owner (uid {self.owner_uid}) "
                                   "nor in an admin group of the quota file's [access] table")

    # -------------------------------------------------------------- reads
    def hello(self, conn, args):
        p = self.plane
        return {"version": VERSION, "pid": os.getpid(), "backend": p.backend_name, "simulated": p.simulated,
                "backend_reason": p.backend_reason, "tenants": list(p.quotas.names), "you": str(conn.peer)}

    def prog_list(self, conn, args):
        return [dataclasses.asdict(p) for p in self.plane.programs().values()]

    def _program(self, args):
        pid = _int_arg(args, "id", 1, 1 << 62)
        programs = self.plane.programs()
        if pid not in programs:
            raise ServiceError(f"no program {pid}; loaded: {', '.join(map(str, programs))}", "not_found")
        return programs[pid]

    def prog_show(self, conn, args):
        loaded = self._program(args)
        code = self.plane.program_code(loaded.id)
        maps = [{"name": m.name, "kind": m.kind, "value_size": m.value_size, "max_entries": m.max_entries}
                for m in code.maps]
        return {**dataclasses.asdict(loaded), "source": code.source, "maps": maps}

    def prog_dump(self, conn, args):
        from gbpfd.isa.disasm import disassemble
        from gbpfd.verifier import verify
        loaded = self._program(args)
        code = self.plane.program_code(loaded.id)
        out = {"id": loaded.id, "text": disassemble(code)}
        if args.get("verifier"):
            out["verifier_log"] = list(verify(code, loaded.hook).log)
        return out

    def quotas_show(self, conn, args):
        from gbpfd.quotas.schema import FIELDS
        q = self.plane.quotas
        return {"source": q.source, "epoch": int(self.plane.health().epoch),
                "tenants": {t.name: {f.name: t.field_value(f.name) for f in FIELDS} for t in q.tenants}}

    def top(self, conn, args):
        from gbpfd.top import frame
        f = frame(self.plane)
        f["events"] = [e["kind"] for e in self.events.recent(20)]
        return f

    def events_since(self, conn, args):
        after = _int_arg(args, "after", -1, 1 << 62, default=-1)
        return self.events.since(after, EVENTS_PER_REPLY)

    # ------------------------------------------------------------- writes
    def prog_load(self, conn, args):
        self._require_admin(conn, "prog.load")
        name = os.path.basename(_str_arg(args, "name"))
        try:
            data = base64.b64decode(_str_arg(args, "data"), validate=True)
        except ValueError:
            raise ServiceError("argument 'data' is not base64", "bad_args") from None
        program = self._load_file(name, data, _str_arg(args, "section", optional=True))
        loaded = self.plane.load(program, _str_arg(args, "hook", optional=True))
        self.log(f"{conn.peer} loaded program {loaded.id} ({loaded.name}) into {loaded.hook} slot {loaded.slot}")
        return dataclasses.asdict(loaded)

    @staticmethod
    def _load_file(name: str, data: bytes, section: str | None):
        from gbpfd.isa.load import load_program
        with tempfile.TemporaryDirectory(prefix="gbpfd-load-") as tmp:
            path = Path(tmp, name)
            path.write_bytes(data)
            try:
                return dataclasses.replace(load_program(path, section=section), source=name)
            except InputError as err:
                raise _as_client_file(err, tmp, name) from None

    def prog_unload(self, conn, args):
        self._require_admin(conn, "prog.unload")
        hook = _str_arg(args, "hook")
        self.plane.unload(hook)
        self.log(f"{conn.peer} unloaded {hook}")
        return {"hook": hook}

    def quotas_set(self, conn, args):
        from gbpfd.quotas.load import load_quotas_text
        self._require_admin(conn, "quotas.set")
        quotas = load_quotas_text(_str_arg(args, "text"), os.path.basename(_str_arg(args, "name")))
        epoch = self.plane.set_quotas(quotas)
        self.log(f"{conn.peer} set quotas from {quotas.source}: epoch {epoch}")
        return {"epoch": epoch}

    # ------------------------------------------------------------ tenants
    def attach(self, conn, args):
        tenant = _str_arg(args, "tenant")
        index = self.plane.quotas.index(tenant)
        if "tenant" in conn.session:
            raise ServiceError(f"already attached as {conn.session['tenant']!r}; detach first", "bad_state")
        if not self.plane.quotas.access.may_attach(tenant, conn.peer.uid, conn.peer.gids, self.owner_uid):
            self._deny(conn, f"attach as {tenant!r}", f"uid {conn.peer.uid} is not allowed this tenant by the "
                                                      "quota file's [access] table")
        if not self.plane.simulated:
            raise ServiceError("tenants in other processes on a GPU need the plane's memory shared over CUDA IPC "
                               "under MPS, which this daemon does not do yet; launch from the daemon's process",
                               "unsupported")
        conn.session.update(tenant=tenant, index=index, launches={})
        self.log(f"{conn.peer} attached as {tenant}")
        return {"tenant": tenant, "index": index}

    def detach(self, conn, args):
        tenant = self._tenant(conn)
        self.release(conn)
        return {"tenant": tenant}

    def _tenant(self, conn) -> str:
        if "tenant" not in conn.session:
            raise ServiceError("not attached: send 'attach' with a tenant first", "bad_state")
        return conn.session["tenant"]

    def launch(self, conn, args):
        self._tenant(conn)
        mode = args.get("mode", "gate")
        if mode not in LAUNCH_MODES:
            raise ServiceError(f"argument 'mode' must be one of {', '.join(LAUNCH_MODES)}, got {mode!r}", "bad_args")
        run = self.plane.device.launch(conn.session["index"], blocks=_int_arg(args, "blocks", 1, MAX_BLOCKS),
                                       block_ns=_int_arg(args, "block_ns", 1, MAX_BLOCK_NS), mode=mode)
        launches = conn.session["launches"]
        launches[len(launches) + 1] = run
        return {"launch": len(launches)}

    def launch_status(self, conn, args):
        self._tenant(conn)
        run = conn.session["launches"].get(_int_arg(args, "launch", 1, 1 << 62))
        if run is None:
            raise ServiceError(f"no launch {args.get('launch')!r} of this client", "not_found")
        return {"blocks": run.blocks, "blocks_done": run.blocks_done, "done": run.done_ns is not None,
                "latency_ns": run.latency_ns}

    def release(self, conn) -> None:
        """A client detached or went away: cancel what it left running."""
        if "tenant" not in conn.session:
            return
        cancelled = sum(self.plane.device.cancel(run) for run in conn.session["launches"].values())
        self.log(f"{conn.peer} detached from {conn.session['tenant']}: {cancelled} unfinished launches cancelled")
        conn.session.clear()
