"""The command-line verbs of the service: ``gbpfd serve`` and, against a
running daemon, ``gbpfd prog ...``, ``gbpfd quotas ...`` and ``gbpfd events``.

Exit codes as everywhere in ``gbpfd``: 0 success, 1 a refusal (the
daemon's, or the verifier's through it), 2 bad input or no daemon.
"""
from __future__ import annotations

import json
import sys
import time

from gbpfd.service.protocol import ServiceError

PROG_COLUMNS = ("id", "hook", "name", "tag", "slot", "active", "loaded_at", "insns", "cost")
BAD_INPUT_KINDS = ("unreachable", "bad_args", "LoadError", "AsmError", "InputError", "QuotaError", "malformed")
EVENTS_POLL_S = 0.2


def _socket_argument(cmd) -> None:
    cmd.add_argument("--socket", help="the daemon's control socket (default: $GBPFD_SOCKET, else "
                                      "$XDG_RUNTIME_DIR/gbpfd/gbpfd.sock)")


def add_parsers(sub) -> None:
    cmd = sub.add_parser("serve", help="keep a plane running and serve it on a control socket, one stats line a "
                                       "second")
    cmd.add_argument("--quotas", help="quota file (default: the shipped demo quotas)")
    cmd.add_argument("--policy", action="append", default=[], metavar="FILE",
                     help="a program to load after the baseline (.s/.bin/.o; repeat for several)")
    cmd.add_argument("--backend", choices=("auto", "cuda", "sim"), default="auto")
    cmd.add_argument("--idle-timeout", type=float, default=10.0, metavar="S",
                     help="close a client that sends no request within S seconds of connecting (default 10)")
    _socket_argument(cmd)
    cmd.set_defaults(run=run_serve)

    prog = sub.add_parser("prog", help="list, show, dump, load and unload the programs of a running daemon")
    verbs = prog.add_subparsers(dest="verb", required=True)
    for name, help_ in (("list", "every loaded program, the active one marked"),
                        ("show", "one program's record and maps"), ("dump", "one program disassembled")):
        cmd = verbs.add_parser(name, help=help_)
        if name != "list":
            cmd.add_argument("id", type=int, help="the program's id, as prog list shows it")
        if name == "dump":
            cmd.add_argument("--verifier", action="store_true", help="add the verifier's log for the program")
        cmd.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
        _socket_argument(cmd)
        cmd.set_defaults(run=run_prog)
    cmd = verbs.add_parser("load", help="verify a program and swap it in live")
    cmd.add_argument("file", help="a .s/.asm text, .bin raw bytecode or ELF .o file, read here and sent")
    cmd.add_argument("--hook", help="hook to load it for (default: the program's own)")
    cmd.add_argument("--section", help="program section of an ELF object with several")
    _socket_argument(cmd)
    cmd.set_defaults(run=run_prog, json=False)
    cmd = verbs.add_parser("unload", help="return a hook to the baseline")
    cmd.add_argument("hook", help="the hook to return to the baseline policy")
    _socket_argument(cmd)
    cmd.set_defaults(run=run_prog, json=False)

    quotas = sub.add_parser("quotas", help="show or set the quotas of a running daemon")
    verbs = quotas.add_subparsers(dest="verb", required=True)
    cmd = verbs.add_parser("show", help="the quotas in force and their epoch")
    _socket_argument(cmd)
    cmd.set_defaults(run=run_quotas)
    cmd = verbs.add_parser("set", help="publish a quota file, all or nothing")
    cmd.add_argument("file", help="the quota file, read here and checked whole by the daemon")
    _socket_argument(cmd)
    cmd.set_defaults(run=run_quotas)

    cmd = sub.add_parser("events", help="follow a running daemon's device events, one JSON line each")
    cmd.add_argument("--count", type=int, help="stop after this many events")
    cmd.add_argument("--timeout", type=float, help="stop after this many seconds")
    _socket_argument(cmd)
    cmd.set_defaults(run=run_events)


def exit_code(err: ServiceError) -> int:
    return 2 if err.kind in BAD_INPUT_KINDS else 1


def reported(fn):
    """Run a verb; a refusal from the daemon is one line on stderr and its exit code."""
    def run(args, *rest) -> int:
        try:
            return fn(args, *rest)
        except ServiceError as err:
            print(f"gbpfd {args.command}: {err}", file=sys.stderr)
            return exit_code(err)
    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    return run


def _client(args):
    from gbpfd.service.client import Client
    return Client(args.socket)


@reported
def run_serve(args) -> int:
    from gbpfd.cuda_toolchain import mps_running
    from gbpfd.demo.run import demo_quotas_path
    from gbpfd.plane.plane import Plane
    from gbpfd.service.daemon import Daemon
    from gbpfd.service.protocol import default_socket
    plane = Plane(args.backend, quotas=args.quotas or demo_quotas_path())
    if not plane.simulated and not mps_running():
        raise ServiceError("kernels of other processes run beside the plane's control kernel only under CUDA MPS, "
                           "and no MPS daemon runs: start it with 'nvidia-cuda-mps-control -d' (as the GPU's "
                           "owner), then gbpfd serve", "no_mps")
    plane.start()
    try:
        for path in args.policy:
            loaded = plane.load(path)
            print(f"gbpfd serve: loaded {loaded.name} into {loaded.hook} (program {loaded.id})", flush=True)
        daemon = Daemon(plane, args.socket or default_socket(), idle_s=args.idle_timeout)
    except BaseException:
        plane.stop()
        raise
    return daemon.serve()


def _table(rows: list[dict], columns) -> str:
    cells = [[str(c) for c in columns]] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


@reported
def run_prog(args) -> int:
    with _client(args) as client:
        if args.verb == "list":
            result = client.call("prog.list")
            text = _table(result, PROG_COLUMNS)
        elif args.verb == "show":
            result = client.call("prog.show", id=args.id)
            text = "\n".join(f"{k}: {v}" for k, v in result.items())
        elif args.verb == "dump":
            result = client.call("prog.dump", id=args.id, verifier=args.verifier)
            text = result["text"].rstrip() + ("\n" + "\n".join(result["verifier_log"]) if args.verifier else "")
        elif args.verb == "load":
            result = client.load(args.file, hook=args.hook, section=args.section)
            text = f"loaded program {result['id']} ({result['name']}) into {result['hook']} slot {result['slot']}"
        else:
            result = client.call("prog.unload", hook=args.hook)
            text = f"{result['hook']} returned to the baseline"
    print(json.dumps(result) if args.json else text)
    return 0


@reported
def run_quotas(args) -> int:
    with _client(args) as client:
        if args.verb == "show":
            result = client.call("quotas.show")
            print(json.dumps(result, indent=1))
        else:
            print(f"quota epoch {client.set_quotas(args.file)['epoch']} adopted")
    return 0


@reported
def run_events(args) -> int:
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen, after = 0, -1
    with _client(args) as client:
        while args.count is None or seen < args.count:
            batch = client.call("events", after=after)
            if batch["lost"]:
                print(json.dumps({"lost": batch["lost"]}), flush=True)
            for event in batch["events"][:None if args.count is None else args.count - seen]:
                print(json.dumps(event), flush=True)
                seen += 1
            after = batch["events"][-1]["seq"] if batch["events"] else after
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(EVENTS_POLL_S if not batch["events"] else 0)
    return 0


CLEAR = "\x1b[H\x1b[2J"


@reported
def top_attached(args, frames: int | None) -> int:
    """``gbpfd top --attach``: the daemon's frames, one per interval (wall clock)."""
    from gbpfd.top import format_frame
    redraw = sys.stdout.isatty() and not args.json
    with _client(args) as client:
        n = 0
        while frames is None or n < frames:
            if n:
                time.sleep(args.interval)
            n += 1
            f = client.call("top")
            text = json.dumps(f) if args.json else format_frame(f)
            print(CLEAR + text if redraw else text, flush=True)
    return 0

